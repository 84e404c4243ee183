# Two commands: `make run` serves the service on embedded defaults, `make test` runs every test.
# Both create .venv at the repo root and install the pinned dependencies first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3006

# Heartbeats: Daphne pings a socket idle for 20 s and drops it when no pong comes within 30 s, so
# half-open sockets go within a minute. No 24 h cut (-1): groups and presence are refreshed while a
# socket lives (realtime.presence), and clients resume after any reconnect anyway.
DAPHNE_FLAGS ?= --ping-interval 20 --ping-timeout 30 --websocket_timeout -1

# `make demo` (README): `make run` with demo data, and links that open it logged in.
.PHONY: install run demo test lint bench bench-inbox bench-ws bench-webhooks bench-search bench-reports token messages

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	@$(PY) manage.py open_next --base-url http://$(HOST):$(PORT)
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) $(DAPHNE_FLAGS) chatservice.asgi:application

# Seeds once (a second run reuses the data), prints the pages and three fresh links, then serves like `run`.
demo: install
	$(PY) manage.py migrate --noinput
	@$(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) $(DAPHNE_FLAGS) chatservice.asgi:application

# axe-core for the accessibility tests, pinned by package-lock.json (test-only; nothing from npm is served).
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $(NODE_STAMP)

test: install $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/rest_bench.py

bench-inbox: install
	$(PY) bench/inbox_bench.py

bench-ws: install
	$(PY) bench/ws_bench.py $(BENCH_ARGS)

bench-webhooks: install
	$(PY) bench/webhook_bench.py

# Message search over 1,000,000 messages (SQLite; BENCH_ARGS="--database-url postgres://…" for PostgreSQL).
bench-search: install
	$(PY) bench/search_bench.py $(BENCH_ARGS)

# GET /api/reports over 100,000 conversations and 2,000,000 messages (SQLite; BENCH_ARGS="--database-url postgres://…").
bench-reports: install
	$(PY) bench/reports_bench.py $(BENCH_ARGS)

token: install
	@$(PY) manage.py mint_token --user $${CHAT_USER:-u1} --role $${ROLE:-USER}

# Translations (README, "Languages"): collect the pages' strings into locale/bn/*.po (new ones empty, for a
# translator to fill), then compile the .mo files the service reads. Both are committed.
MESSAGE_IGNORE := --ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=locale --ignore=node_modules
messages: install
	$(PY) manage.py makemessages -l bn --no-location $(MESSAGE_IGNORE)
	$(PY) manage.py makemessages -d djangojs -l bn --no-location $(MESSAGE_IGNORE)
	$(PY) manage.py compilemessages -l bn --ignore=.venv
