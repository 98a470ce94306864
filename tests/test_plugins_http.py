"""The `http` kind of examples/plugins/jaz-http, a job kind from its own package (the
`jaz.kinds` entry point group), run end to end against a real HTTP server on 127.0.0.1:
from `jaz run` as a process and from a real `jaz server`, with its outputs reaching the
next job, its logs, its status check, stop, timeouts and retries."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_support import Site, http_site, jaz, jaz_env
from support import running_server, wait_for


@pytest.fixture
def site() -> Iterator[Site]:
    with http_site() as s:
        yield s


def _run(tmp_path: Path, text: str, *args: str, **env: str
         ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    (tmp_path / "net.toml").write_text(text)
    result = jaz(jaz_env(tmp_path / "home", **env), "run", "net.toml", "--json", *args,
                 cwd=tmp_path)
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def _logs(tmp_path: Path, run_id: int, job: str) -> str:
    result = jaz(jaz_env(tmp_path / "home"), "logs", str(run_id), job, "--local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_get_passes_its_status_and_body_to_the_next_jobs_environment(tmp_path: Path,
                                                                        site: Site) -> None:
    result, out = _run(tmp_path, f"""
[jobs.get]
http = "{site.url}/hello"

[jobs.show]
needs = ["get"]
run = 'printf "%s|%s|%s" "$HTTP_STATUS" "$HTTP_BODY" "$HTTP_CONTENT_TYPE" > seen.txt'
""")
    assert result.returncode == 0, result.stderr
    assert out["status"] == "succeeded"
    assert out["jobs"]["get"]["outputs"] == {"HTTP_STATUS": "200",
                                             "HTTP_BODY": "hello from the site\n",
                                             "HTTP_CONTENT_TYPE": "text/plain; charset=utf-8"}
    assert (tmp_path / "seen.txt").read_text() == \
        "200|hello from the site\n|text/plain; charset=utf-8"
    assert site.paths() == ["/hello"]
    logs = _logs(tmp_path, out["run_id"], "get")
    assert "hello from the site" in logs          # the body, in the stdout log
    assert "> GET " + site.url + "/hello" in logs and "< 200 OK" in logs   # the stderr log


def test_a_wrong_status_fails_the_job_with_what_was_expected_and_got(tmp_path: Path,
                                                                      site: Site) -> None:
    result, out = _run(tmp_path, f"""
[jobs.get]
http = {{ url = "{site.url}/status/503" }}

[jobs.after]
needs = ["get"]
run = "true"
""")
    assert result.returncode == 1
    job = out["jobs"]["get"]
    assert job["status"] == "failed"
    assert job["outputs"]["HTTP_STATUS"] == "503"
    assert out["jobs"]["after"]["status"] == "pending"
    human = jaz(jaz_env(tmp_path / "home"), "status", str(out["run_id"]), "--local",
                cwd=tmp_path)
    assert f"expected status 200, got 503 Service Unavailable from GET {site.url}/status/503" \
        in human.stdout + human.stderr


@pytest.mark.parametrize(("status", "ok"), [("503", True), ('"5xx"', True),
                                            ('"500-502"', False), ("[200, 503]", True),
                                            ('["2xx", "4xx"]', False)])
def test_the_expected_status_may_be_a_code_a_range_or_a_list(tmp_path: Path, site: Site,
                                                             status: str, ok: bool) -> None:
    result, out = _run(tmp_path, f"""
[jobs.get]
http = {{ url = "{site.url}/status/503", status = {status} }}
""")
    assert (result.returncode, out["jobs"]["get"]["status"]) == \
        ((0, "succeeded") if ok else (1, "failed"))


def test_a_post_sends_its_headers_and_body_with_variables_and_keeps_secrets_out_of_logs(
        tmp_path: Path, site: Site) -> None:
    result, out = _run(tmp_path, f"""
[params]
DAY = "2026-01-02"

[jobs.post]
env = {{ TOKEN = {{ secret = "hook" }} }}

[jobs.post.http]
url = "{site.url}/echo"
method = "post"
body = '{{"day": "${{DAY}}"}}'
headers = {{ Authorization = "Bearer ${{TOKEN}}", Content-Type = "application/json" }}
""", "-p", "DAY=2026-03-04", JAZ_SECRET_HOOK="s3cret-value")
    assert result.returncode == 0, result.stderr
    (request,) = site.requests
    assert request["method"] == "POST"
    assert request["body"] == '{"day": "2026-03-04"}'
    assert request["headers"]["Authorization"] == "Bearer s3cret-value"
    assert request["headers"]["Content-Type"] == "application/json"
    echoed = json.loads(out["jobs"]["post"]["outputs"]["HTTP_BODY"].replace("***", "x"))
    assert echoed["body"] == '{"day": "2026-03-04"}'
    logs = _logs(tmp_path, out["run_id"], "post")
    assert "> Authorization: Bearer ***" in logs
    assert "s3cret-value" not in logs + result.stdout


def test_a_job_timeout_aborts_the_request_at_once(tmp_path: Path, site: Site) -> None:
    start = time.monotonic()
    result, out = _run(tmp_path, f"""
[jobs.hang]
timeout = "1s"
http = "{site.url}/slow"
""")
    took = time.monotonic() - start
    assert result.returncode == 1
    job = out["jobs"]["hang"]
    assert (job["status"], job["timed_out"]) == ("failed", True)
    assert took < 8, took          # the server would answer after 60 s
    wait_for(site.aborted.is_set, "the site to see the client hang up", timeout=5)


def test_the_kinds_own_timeout_bounds_the_request(tmp_path: Path, site: Site) -> None:
    result, out = _run(tmp_path, f"""
[jobs.hang]
http = {{ url = "{site.url}/slow", timeout = "0.5s" }}
""")
    assert result.returncode == 1
    assert out["jobs"]["hang"]["timed_out"] is False
    logs = _logs(tmp_path, out["run_id"], "hang")
    assert f"no response to GET {site.url}/slow within 0.5s" in logs
    wait_for(site.aborted.is_set, "the site to see the client hang up", timeout=5)


def test_ctrl_c_stops_a_request_in_flight_promptly(tmp_path: Path, site: Site) -> None:
    (tmp_path / "net.toml").write_text(f'[jobs.hang]\nhttp = "{site.url}/slow"\n')
    proc = subprocess.Popen([sys.executable, "-m", "jaz", "run", "net.toml", "--json"],
                            env=jaz_env(tmp_path / "home"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "/slow" in site.paths(), "the request to reach the site")
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=10)
        took = time.monotonic() - asked
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    out = json.loads(stdout)
    assert (out["status"], out["jobs"]["hang"]["status"]) == ("stopped", "stopped")
    assert took < 5, took
    wait_for(site.aborted.is_set, "the site to see the client hang up", timeout=5)


def test_retries_make_another_request(tmp_path: Path, site: Site) -> None:
    result, out = _run(tmp_path, f"""
[jobs.flaky]
retries = 2
http = "{site.url}/flaky"
""")
    assert result.returncode == 0, result.stderr
    assert out["jobs"]["flaky"]["attempts"] == 3
    assert out["jobs"]["flaky"]["outputs"]["HTTP_BODY"] == "try 3\n"
    assert site.paths() == ["/flaky"] * 3


def test_a_big_body_is_capped_in_the_log_and_in_the_output(tmp_path: Path, site: Site) -> None:
    result, out = _run(tmp_path, f"""
[jobs.big]
http = {{ url = "{site.url}/big", max_output = 10 }}
""")
    assert result.returncode == 0, result.stderr
    assert out["jobs"]["big"]["outputs"]["HTTP_BODY"] == "x" * 10
    logs = sorted((tmp_path / "home").rglob("big*"))
    sizes = {p.name: p.stat().st_size for p in logs if p.is_file()}
    assert 1 << 20 in sizes.values(), sizes   # the stdout log: the body's first MiB
    assert "(the body's last 1048576 bytes are not in the log)" in \
        _logs(tmp_path, out["run_id"], "big")


def test_a_refused_connection_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    from support import free_port

    result, out = _run(tmp_path, f'[jobs.get]\nhttp = "http://127.0.0.1:{free_port()}/"\n')
    assert result.returncode == 1
    assert out["jobs"]["get"]["status"] == "failed"
    assert "Connection refused" in _logs(tmp_path, out["run_id"], "get")


# ------------------------------------------------------------------ on a real server


def _api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_http_jobs_on_a_real_server_pass_outputs_log_and_stop(tmp_path: Path,
                                                              site: Site) -> None:
    nets = {
        "ping": f'[jobs.get]\nhttp = "{site.url}/hello"\n\n[jobs.show]\nneeds = ["get"]\n'
                'run = \'echo "saw $HTTP_STATUS"\'\n',
        "hang": f'[jobs.wait]\nhttp = "{site.url}/slow"\n',
    }
    with running_server(tmp_path, nets) as (url, token, _env, _home):
        listed = {j["name"]: j for j in _api(url, token, "GET", "/api/v1/jobnets")}
        assert listed["ping"]["valid"] and listed["hang"]["valid"]

        run_id = _api(url, token, "POST", "/api/v1/runs", {"jobnet": "ping"})["run_id"]
        run = wait_for(lambda: (r := _api(url, token, "GET", f"/api/v1/runs/{run_id}"))
                       ["status"] in ("succeeded", "failed", "error") and r, "ping to end")
        assert run["status"] == "succeeded", run
        assert run["jobs"]["get"]["outputs"]["HTTP_STATUS"] == "200"
        logs = _api(url, token, "GET", f"/api/v1/runs/{run_id}/logs")
        text = {(c["job"], c["stream"]): c["text"] for c in logs}
        assert text[("show", "stdout")] == "saw 200\n"
        assert text[("get", "stdout")] == "hello from the site\n"

        run_id = _api(url, token, "POST", "/api/v1/runs", {"jobnet": "hang"})["run_id"]
        wait_for(lambda: "/slow" in site.paths(), "the request to reach the site")
        asked = time.monotonic()
        _api(url, token, "POST", f"/api/v1/runs/{run_id}/stop")
        run = wait_for(lambda: (r := _api(url, token, "GET", f"/api/v1/runs/{run_id}"))
                       ["status"] == "stopped" and r, "hang to stop", timeout=10)
        assert run["jobs"]["wait"]["status"] == "stopped"
        assert time.monotonic() - asked < 5
        wait_for(site.aborted.is_set, "the site to see the client hang up", timeout=5)
