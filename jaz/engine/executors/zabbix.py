"""`zabbix = { server, host, key, value }`: JAZ's zabbix_sender job, one value to a trapper.

The value is a template like a `set` value: `${expression}` parts are replaced, with
the job's variables (params, jobnet variables, upstream outputs, `JAZ_*`) in scope.
The send runs in the engine's worker thread; the sender's own timeouts bound it, so
`stop` only marks the outcome as stopped.
"""

from __future__ import annotations

import threading
from datetime import datetime

from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome, redact
from jaz.engine.model import ZabbixAction
from jaz.errors import ActionError


class ZabbixExecution(Execution):
    def __init__(self, attempt: Attempt, connect_timeout: float, read_timeout: float) -> None:
        self.attempt = attempt
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._stopped = threading.Event()

    def wait(self) -> Outcome:
        from jaz.engine import zabbix  # sockets only when a zabbix job runs

        a = self.attempt
        action = a.job.action
        assert isinstance(action, ZabbixAction)
        a.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            value = render_value(action.value, a)
            reply = zabbix.send(action.server,
                                [zabbix.Item(host=action.host, key=action.key, value=value)],
                                connect_timeout=self.connect_timeout,
                                read_timeout=self.read_timeout)
        except ActionError as e:
            message = redact(str(e), a.redact)
            a.stdout_path.write_text("")
            a.stderr_path.write_text(message + "\n")
            return Outcome(exit_code=1, error=message, stderr_tail=message + "\n",
                           stopped=self._stopped.is_set())
        line = f"sent to {action.server}: {action.host} {action.key}: {reply.info}\n"
        a.stdout_path.write_text(line)
        a.stderr_path.write_text("")
        return Outcome(exit_code=0, stdout_tail=line, outputs={"ZABBIX_INFO": reply.info},
                       stopped=False)

    def stop(self) -> None:
        self._stopped.set()


def render_value(template: str, attempt: Attempt) -> str:
    """The value with `${...}` replaced; a bad or failing expression fails the job."""
    from jaz.engine import expr

    if "${" not in template:
        return template
    scope = expr.Scope(variables=dict(attempt.env), jobs={},
                       now=datetime.now().astimezone())
    try:
        return expr.parse_template(template).render(scope)
    except expr.ExprError as e:
        raise ActionError(f"zabbix.value: {e}") from None


class ZabbixExecutor(Executor):
    def __init__(self, *, connect_timeout: float = 5.0, read_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def start(self, attempt: Attempt) -> Execution:
        return ZabbixExecution(attempt, self.connect_timeout, self.read_timeout)
