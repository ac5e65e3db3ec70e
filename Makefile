# belcheer — two commands: `make demo` and `make test`. Everything set-up needs is here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := .ci/constraints.txt
DEMO_WS ?= demo-workspace
PORT ?= 8000
HOST ?= 127.0.0.1
# real data beside the project root, unless told otherwise
BELCHEER_REAL_DATA ?= $(abspath ../shared/data)
export BELCHEER_REAL_DATA
# the NSO soum tables (registered livestock) for the demo's soum report, read in place if present
NSO_DIR := $(BELCHEER_REAL_DATA)/mongolia_nso
ifneq ($(wildcard $(NSO_DIR)/NSO_Livestock_Count_Admin2.json),)
export BELCHEER_NSO_DATA ?= $(NSO_DIR)
endif

.PHONY: install sysdeps web demo demo-run serve test test-fast lint lock clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	@touch $@

install: $(STAMP) web sysdeps

# Debian packages the tests use: poppler-utils (pdftoppm, pdftotext) reads back the soum report PDF
sysdeps:
	@if ! command -v pdftoppm >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then apt-get install -y -q poppler-utils; \
	  else echo "please install poppler-utils (pdftoppm, pdftotext): the PDF report tests need it" >&2; fi; \
	fi

# The web map's JavaScript (MapLibre GL) comes from the npm registry at set-up, never from a CDN.
web:
	@if [ -f api/web/package.json ]; then \
	  if [ ! -d api/web/node_modules ] || [ api/web/package-lock.json -nt api/web/node_modules ]; then \
	    (cd api/web && npm ci --no-audit --no-fund --loglevel=error) && touch api/web/node_modules; \
	  fi; \
	fi

demo: install
	$(BIN)/belcheer --workspace $(DEMO_WS) demo --host $(HOST) --port $(PORT)

# the same pipeline without starting the server (used by tests and CI)
demo-run: install
	$(BIN)/belcheer --workspace $(DEMO_WS) demo --no-serve

serve: install
	$(BIN)/belcheer --workspace $(DEMO_WS) serve --host $(HOST) --port $(PORT)

test: install
	@$(BIN)/python -m pytest -n 2 --dist loadfile --timeout 900 --nbmake --nbmake-timeout=900 \
	  tests notebooks $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser" tests $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check belcheer ingest orthomosaic indices zoning api tests bench

# peer tools: Debian libimage-exiftool-perl and gdal-bin, and `pip install titiler.application`
bench: install
	@for b in ingest indices zonal tiles simulate mosaic; do \
	  echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit $$?; done

# refresh the constraints file from the current environment (run after changing dependencies)
lock: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(DEMO_WS) .pytest_cache api/web/node_modules
