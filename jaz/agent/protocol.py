"""What the agent accepts on the wire: each request checked field by field before it
does anything (`check`), so that a malformed one gets a clear error and nothing else.

Operations (every request: `op`, `token`, `owner` — the server's identity, so that one
agent serves several servers and each sees only its own jobs):

| op | fields | answer |
| --- | --- | --- |
| hello | | version, hostname, running |
| submit | id, spec | job (accepted, committed), new |
| submit_many | jobs: [{id, spec}] | jobs: [{job, new}], all in one commit |
| get | id | job |
| list | | jobs: every job of the owner not acknowledged yet |
| wait | timeout, ids | jobs: ended, not acknowledged, among ids (a long poll); log sizes |
| ack | ids | acked: how many |
| stop | id | job |
| read | id, stream, offset, limit | data (base64), next, size, ended |
| files | path (a glob), recursive | files: [{path, size}], dirs; with `recursive`, trees |
| fstat | path | exists, dir |
| fread | path, offset, limit | data (base64), size, next |
| fwrite | path, part, offset, data | next (into a part file beside path) |
| fcommit | path, part, size, sha256, overwrite | the part renamed to path if both match |
| fsum | path | sha256, size |
| fmkdir | path | the folder made (with its parents) |
| frename | path, to | a staged folder (`.NAME.jaz-part-ID`) renamed to `to`, which must not exist |
| fdiscard | path | a staged folder removed |
"""

from __future__ import annotations

import re
from typing import Any

OPS = {"hello", "submit", "submit_many", "get", "list", "wait", "ack", "stop", "read",
       "files", "fstat", "fread", "fwrite", "fcommit", "fsum", "fmkdir", "frename",
       "fdiscard"}
FILE_OPS = {"files", "fstat", "fread", "fwrite", "fcommit", "fsum", "fmkdir", "frename",
            "fdiscard"}
_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
MAX_BATCH = 1000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
MAX_WAIT = 30.0


class BadRequest(Exception):
    """A request the agent does not take; its message says which field and why."""


def _want(message: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in message:
        raise BadRequest(f"{key!r} is missing: expected {what}")
    value = message[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,))):
        raise BadRequest(f"{key!r} must be {what}, got {type(value).__name__}")
    return value


def check(message: dict[str, Any]) -> dict[str, Any]:
    """The request's fields as the agent uses them; BadRequest when it is malformed."""
    op = message.get("op")
    if op not in OPS:
        raise BadRequest(f"unknown op {op!r}: expected one of {', '.join(sorted(OPS))}")
    owner = _want(message, "owner", str, "the server's identity (a string)")
    if not _OWNER.fullmatch(owner):
        raise BadRequest("'owner' must be 1-200 letters, digits and . _ : -")
    out: dict[str, Any] = {"op": op, "owner": owner}
    if op in ("submit", "get", "stop", "read"):
        job_id = _want(message, "id", str, "a job id (a string)")
        if not _ID.fullmatch(job_id):
            raise BadRequest("'id' must be 1-200 letters, digits and . _ - (not starting "
                             "with . _ -)")
        out["id"] = job_id
    if op in FILE_OPS:
        path = _want(message, "path", str, "a path (a string)")
        if not path or "\0" in path:
            raise BadRequest("'path' must be a non-empty path without NUL")
        out["path"] = path
        if op in ("fread", "fwrite"):
            offset = _want(message, "offset", int, "a byte offset (a whole number)")
            if offset < 0:
                raise BadRequest("'offset' must not be negative")
            out["offset"] = offset
        if op == "fread":
            limit = _want(message, "limit", int, "a number of bytes (a whole number)")
            out["limit"] = max(0, limit)
        if op in ("fwrite", "fcommit"):
            part = _want(message, "part", str, "a part id (a string)")
            if not _PART.fullmatch(part):
                raise BadRequest("'part' must be 1-64 letters, digits, _ and -")
            out["part"] = part
        if op == "fwrite":
            out["data"] = _want(message, "data", str, "base64 data (a string)")
        if op == "files":
            out["recursive"] = bool(message.get("recursive") is True)
        if op == "frename":
            to = _want(message, "to", str, "a path (a string)")
            if not to or "\0" in to:
                raise BadRequest("'to' must be a non-empty path without NUL")
            out["to"] = to
        if op == "fcommit":
            size = _want(message, "size", int, "a size in bytes")
            digest = _want(message, "sha256", str, "a SHA-256 (64 hex digits)")
            if not _HEX.fullmatch(digest):
                raise BadRequest("'sha256' must be 64 lower-case hex digits")
            out["size"], out["sha256"] = size, digest
            out["overwrite"] = bool(_want(message, "overwrite", bool, "true or false"))
        return out
    if op == "submit":
        out["spec"] = _spec(_want(message, "spec", dict, "the job (an object)"))
    elif op == "submit_many":
        jobs = _want(message, "jobs", list, "a list of jobs ({\"id\", \"spec\"})")
        if not 1 <= len(jobs) <= MAX_BATCH:
            raise BadRequest(f"'jobs' must hold 1 to {MAX_BATCH} jobs")
        out["jobs"] = []
        for index, job in enumerate(jobs):
            if not isinstance(job, dict):
                raise BadRequest(f"jobs[{index}] must be an object")
            try:
                job_id = _want(job, "id", str, "a job id (a string)")
                if not _ID.fullmatch(job_id):
                    raise BadRequest("'id' must be 1-200 letters, digits and . _ -")
                out["jobs"].append((job_id, _spec(_want(job, "spec", dict, "the job"))))
            except BadRequest as e:
                raise BadRequest(f"jobs[{index}]: {e}") from None
    elif op == "wait":
        timeout = _want(message, "timeout", (int, float), "seconds (a number)")
        out["timeout"] = min(max(float(timeout), 0.0), MAX_WAIT)
        out["ids"] = _ids(message) if "ids" in message else None
    elif op == "ack":
        out["ids"] = _ids(message)
    elif op == "read":
        stream = message.get("stream")
        if stream not in ("stdout", "stderr"):
            raise BadRequest(f"'stream' must be \"stdout\" or \"stderr\", got {stream!r}")
        out["stream"] = stream
        offset = _want(message, "offset", int, "a byte offset (a whole number)")
        limit = _want(message, "limit", int, "a number of bytes (a whole number)")
        if offset < 0 or limit < 0:
            raise BadRequest("'offset' and 'limit' must not be negative")
        out["offset"], out["limit"] = offset, limit
    return out


def _ids(message: dict[str, Any]) -> list[str]:
    ids = _want(message, "ids", list, "a list of job ids")
    if len(ids) > 10_000 or not all(isinstance(i, str) and _ID.fullmatch(i) for i in ids):
        raise BadRequest("'ids' must be a list of at most 10000 job ids")
    return [str(i) for i in ids]


def _spec(spec: dict[str, Any]) -> dict[str, Any]:
    reboot = spec.get("reboot")
    if reboot is not None and reboot not in ("now", "after_jobs"):
        raise BadRequest(f"spec.reboot must be \"now\" or \"after_jobs\", got {reboot!r}")
    # a reboot runs the agent's own reboot_command: no script comes with it
    out: dict[str, Any] = {"script": "" if reboot else
                           _want(spec, "script", str, "the job's script")}
    if reboot:
        out["reboot"] = reboot
    for key in ("shell", "cwd", "user", "stop_command", "jobnet", "job"):
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"spec.{key} must be a string, got {type(value).__name__}")
        if value is not None:
            out[key] = value
    for key in ("run_id", "attempt"):
        value = spec.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"spec.{key} must be a whole number")
        out[key] = value
    grace = spec.get("grace", 5.0)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= 3600:
        raise BadRequest("spec.grace must be seconds from 0 to 3600")
    out["grace"] = float(grace)
    env = spec.get("env", {})
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k
            for k, v in env.items()):
        raise BadRequest("spec.env must map names (without \"=\") to strings")
    if any("\0" in k or "\0" in v for k, v in env.items()) or "\0" in out["script"]:
        raise BadRequest("the script or environment holds a NUL character")
    out["env"] = env
    secrets = spec.get("secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        raise BadRequest("spec.secrets must be a list of strings")
    out["secrets"] = secrets
    return out
