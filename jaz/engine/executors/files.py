"""File wait and file transfer on the local host (SFTP variants come with SSH hosts)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome
from jaz.engine.loader import split_host_path
from jaz.engine.model import TransferAction, WaitFileAction
from jaz.errors import ActionError


class _ThreadExecution(Execution):
    """An attempt that is a Python function polling a stop event."""

    def __init__(self, body: Callable[[threading.Event], Outcome]) -> None:
        self._stop = threading.Event()
        self._body = body

    def wait(self) -> Outcome:
        try:
            outcome = self._body(self._stop)
        except ActionError as e:
            outcome = Outcome(exit_code=1, error=str(e))
        except OSError as e:
            outcome = Outcome(exit_code=1, error=f"{e.filename or ''}: {e.strerror}".strip(": "))
        if self._stop.is_set() and outcome.exit_code != 0:
            return Outcome(exit_code=outcome.exit_code, error=outcome.error, stopped=True)
        return outcome

    def stop(self) -> None:
        self._stop.set()


def _local(base: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


class WaitFileExecutor(Executor):
    def start(self, attempt: Attempt) -> Execution:
        action = attempt.job.action
        assert isinstance(action, WaitFileAction)
        path = _local(attempt.base_dir, action.path)

        def body(stop: threading.Event) -> Outcome:
            deadline = None if action.timeout is None else time.monotonic() + action.timeout
            while True:
                matches = sorted(path.parent.glob(path.name)) if any(
                    ch in path.name for ch in "*?[") else ([path] if path.exists() else [])
                if matches:
                    if action.delete:
                        for m in matches:
                            m.unlink(missing_ok=True)
                    return Outcome(exit_code=0, outputs={"FILE": str(matches[0])},
                                   stdout_tail=f"found {matches[0]}\n")
                if action.check:
                    return Outcome(exit_code=1, error=f"{path} does not exist")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return Outcome(exit_code=1, error=f"{path} did not appear within "
                                                      f"{action.timeout:g}s")
                wait = action.interval if remaining is None else min(action.interval, remaining)
                if stop.wait(wait):
                    return Outcome(exit_code=1, error="stopped while waiting for a file")

        return _ThreadExecution(body)


class TransferExecutor(Executor):
    def start(self, attempt: Attempt) -> Execution:
        action = attempt.job.action
        assert isinstance(action, TransferAction)
        _, src_path = split_host_path(action.source)
        _, dst_path = split_host_path(action.dest)
        src = _local(attempt.base_dir, src_path)
        dst = _local(attempt.base_dir, dst_path)

        def body(stop: threading.Event) -> Outcome:
            sources = sorted(src.parent.glob(src.name)) if any(
                ch in src.name for ch in "*?[") else [src]
            if not sources or not sources[0].exists():
                raise ActionError(f"transfer source {src} does not exist")
            into_dir = dst_path.endswith("/") or dst.is_dir() or len(sources) > 1
            if into_dir:
                dst.mkdir(parents=True, exist_ok=True)
            copied = []
            for s in sources:
                if stop.is_set():
                    raise ActionError("stopped during transfer")
                target = dst / s.name if into_dir else dst
                if target.exists() and not action.overwrite:
                    raise ActionError(f"{target} exists; set overwrite = true to replace it")
                target.parent.mkdir(parents=True, exist_ok=True)
                if s.is_dir():
                    shutil.copytree(s, target, dirs_exist_ok=action.overwrite)
                else:
                    shutil.copy2(s, target)
                copied.append(f"{s} -> {target}")
            return Outcome(exit_code=0, stdout_tail="\n".join(copied) + "\n",
                           outputs={"FILES": str(len(copied))})

        return _ThreadExecution(body)
