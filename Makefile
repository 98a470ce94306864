# jaz: `make run` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
PYTEST_WORKERS ?= 2

.PHONY: run test lint bench venv clean completions

PLUGINS := examples/plugins/jaz-http

$(STAMP): pyproject.toml $(PLUGINS:%=%/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# compat mode: a plain .pth path instead of an import hook, ~20 ms less start-up
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@# the example plugin kinds (docs/plugins.md): the tests run them from their own packages
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(PLUGINS:%=-e %) --config-settings editable_mode=compat
	@# byte-compile once so start-up stays fast even where PYTHONDONTWRITEBYTECODE is set
	$(BIN)/python -m compileall -q jaz >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/jaz run examples/nightly-etl.toml -p DAY=$$(date +%F)

test: $(STAMP)
	@# the PostgreSQL tests start a throwaway server from Debian's binaries (as root in CI);
	@# `jaz import pgagent`'s tests need pgAgent's schema too (Debian's pgagent package)
	@{ ls /usr/lib/postgresql/*/bin/initdb && ls /usr/share/postgresql/*/extension/pgagent.control; } \
		>/dev/null 2>&1 || ! command -v apt-get >/dev/null \
		|| { test "$$(id -u)" = 0 && apt-get update -qq \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql pgagent >/dev/null; } \
		|| echo "PostgreSQL or pgAgent could not be installed: their tests will skip (and fail in CI)"
	@# the SSH tests start a real OpenSSH sshd on a loopback port (tests/sshd_support.py)
	@command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd || ! command -v apt-get >/dev/null \
		|| { test "$$(id -u)" = 0 && apt-get update -qq \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; } \
		|| echo "openssh-server could not be installed: the SSH tests will skip (and fail in CI)"
	$(BIN)/python -m compileall -q jaz >/dev/null
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

lint: $(STAMP)
	$(BIN)/ruff check jaz tests bench examples/plugins
	$(BIN)/mypy jaz
	$(BIN)/mypy --strict examples/plugins/jaz-http/jaz_http
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m compileall -q jaz >/dev/null
	$(BIN)/python bench/run_bench.py
	$(BIN)/python bench/schedule_bench.py
	$(BIN)/python bench/server_bench.py
	$(BIN)/python bench/tui_bench.py
	$(BIN)/python bench/ssh_bench.py
	$(BIN)/python bench/agent_bench.py
	$(BIN)/python bench/jazagent_bench.py

completions: $(STAMP)
	$(BIN)/python scripts/gen_completions.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
