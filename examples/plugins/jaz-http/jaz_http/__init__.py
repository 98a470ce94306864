"""The `http` job kind: its declaration, which jaz reads when a jobnet uses `http`.

Kept light: jaz imports this module to check jobnets, so the request machinery
(http.client, ssl) is imported only when a job runs (`jaz_http.request`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jaz.kinds import Executor, Field, FieldError, Kind

__version__ = "0.1.0"

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")   # an RFC 9110 token


def check_url(url: str) -> str:
    if url.startswith("${"):
        return url   # all of it comes from a variable: checked when the job runs
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a user or password in the URL would leak into history: send an "
                         "Authorization header with a secret instead")
    return url


def check_method(method: str) -> str:
    if method.upper() not in METHODS:
        raise ValueError(f"expected one of {', '.join(METHODS)}, got {method!r}")
    return method.upper()


def parse_status(value: Any) -> list[list[int]]:
    """200, "2xx", "200-299" or a list of them → [[low, high], ...]."""
    items = value if isinstance(value, list) else [value]
    ranges: list[list[int]] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            ranges.append([item, item])
            continue
        text = item.strip().lower() if isinstance(item, str) else None
        if text and re.fullmatch(r"[1-5]xx", text):
            low = int(text[0]) * 100
            ranges.append([low, low + 99])
        elif text and (m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", text)) \
                and 100 <= int(m[1]) <= int(m[2]) <= 599:
            ranges.append([int(m[1]), int(m[2])])
        elif text and re.fullmatch(r"\d{3}", text) and 100 <= int(text) <= 599:
            ranges.append([int(text), int(text)])
        else:
            raise ValueError(f'expected a status code (200), a range ("2xx", "200-299") or '
                             f'a list of them, each within 100-599; got {item!r}')
    if not ranges:
        raise ValueError("expected at least one status code")
    return ranges


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER.fullmatch(name):
            raise ValueError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} must be one line, got {value!r}")
    return headers


def check_size(size: int) -> int:
    if size < 0:
        raise ValueError(f"expected a whole number >= 0, got {size!r}")
    return size


def _check(options: Mapping[str, Any]) -> None:
    if options["method"] == "HEAD" and options["body"] is not None:
        raise FieldError("body", "a HEAD request has no body: remove it or use another method")


def _executor() -> Executor:
    from jaz_http.request import HttpExecutor

    return HttpExecutor()


KIND = Kind(
    name="http",
    description="one HTTP request; fails unless the status is the one expected",
    shorthand="url",
    executor=_executor,
    check=_check,
    fields={
        "url": Field(type="string", required=True, template=True, check=check_url,
                     help="the http:// or https:// URL to request"),
        "method": Field(type="string", default="GET", check=check_method,
                        help=f"one of {', '.join(METHODS)}"),
        "status": Field(type="any", default=200, check=parse_status,
                        help='the status that means success: 200, "2xx", "200-299" or a list'),
        "headers": Field(type="table", items="string", default={}, template=True,
                         check=check_headers, help="request headers"),
        "body": Field(type="string", template=True, help="the request body (UTF-8)"),
        "timeout": Field(type="duration", default=30.0,
                         help="the whole request, from connect to the last byte"),
        "verify": Field(type="boolean", default=True, help="check the TLS certificate"),
        "max_output": Field(type="integer", default=4096, check=check_size,
                            help="bytes of the body kept in the HTTP_BODY output"),
    },
)
