# Board of One: the operator's and developer's commands. `make run` and `make test` are all you need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STORES := $(PY) scripts/stores.py run --
PORT ?= 8000
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install install-dev test-tools run test test-fast lint format migrate verify bench bench-import shell up down clean

help:
	@echo "make run      install, prepare the database and start web + worker (http://127.0.0.1:$(PORT))"
	@echo "make test     install dev dependencies, start the stores and run the whole suite"
	@echo "make lint     ruff check, ruff format --check and mypy"
	@echo "make migrate | verify | bench | bench-import | shell | up | down"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements/base.txt requirements/constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.txt
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Browser tests drive Debian's chromium; the network-partition tests drop packets with nftables.
# Each is installed when it is missing.
test-tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (browser and network-partition tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# `make run` does what a deploy does (docker-compose.yml and the Dockerfile too): the Procfile's
# release line, then its web and worker lines, from an install of requirements/base.txt alone.
RELEASE := $(shell sed -n 's/^release: //p' Procfile)

run: install
	$(STORES) sh -c '$(RELEASE) && \
		PORT=$(PORT) python manage.py ensure_demo_account && \
		exec honcho start -f Procfile -p $(PORT) web worker'

test: install-dev test-tools
	$(STORES) $(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: install
	$(STORES) $(PY) manage.py migrate --noinput

verify: install
	$(STORES) sh -c '$(PY) manage.py migrate --noinput -v 0 && $(PY) manage.py verify_session_persistence'

bench: install-dev
	$(STORES) $(PY) -m scripts.bench $(BENCH_ARGS)

# manage.py import_bo1 on a generated source (docs/IMPORT_BENCHMARK.md); BENCH_ARGS e.g. --sessions 20000 --events 600000
bench-import: install-dev
	$(STORES) $(PY) -m scripts.bench_import $(BENCH_ARGS)

shell: install
	$(STORES) $(PY) manage.py shell

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	-[ -x $(PY) ] && $(PY) scripts/stores.py clean
	rm -rf $(VENV) staticfiles .data
