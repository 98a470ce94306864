"""Reading GET /api/v1/stream (server-sent events) for the TUI.

Asynchronous on purpose: the stream is idle most of the time, and an async worker is
cancelled at once when the app quits, where a thread blocked in a read would hold the
exit up until the next keep-alive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jaz.client import Client

STREAM_READ_TIMEOUT = 60.0   # the server sends a keep-alive every 15 s
CONNECTED = "connected"      # the pseudo-event `events` yields once the stream is open


async def events(client: Client) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """(CONNECTED, {}) once the server accepted, then (event name, decoded data) for
    each event until the connection ends; comments (`: keep-alive`) are skipped.
    Transport errors and refusals (as `JazError`s) propagate to the caller."""
    import httpx2 as httpx

    headers = {"Accept": "text/event-stream"}
    if client.token:
        headers["Authorization"] = f"Bearer {client.token}"
    host = httpx.URL(client.url).host
    timeout = httpx.Timeout(STREAM_READ_TIMEOUT, connect=3.0)
    data: list[str]
    async with (
        httpx.AsyncClient(base_url=client.url, headers=headers, timeout=timeout,
                          trust_env=host not in ("127.0.0.1", "localhost", "::1")) as http,
        http.stream("GET", "/api/v1/stream") as response,
    ):
        if not response.is_success:
            await response.aread()
            raise client._error(response)   # the client's own status -> JazError mapping
        yield CONNECTED, {}
        name, data = "message", []   # the event being read
        async for line in response.aiter_lines():
            if not line:
                if data:
                    yield name, json.loads("\n".join(data))
                name, data = "message", []
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
