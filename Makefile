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

.PHONY: install web system-web system-test demo demo-run serve test test-fast lint lock clean bench cluster cluster-down

# Debian packages set-up needs, as command:package pairs. The browser tests drive Debian's
# Chromium (/usr/bin/chromium, with chromium-driver's /usr/bin/chromedriver), the PDF report tests
# read the soum report back with poppler-utils (pdftoppm, pdftotext), the MicaSense cross-check
# reads XMP through exiftool (libimage-exiftool-perl); the web map's
# JavaScript comes through npm. The PostGIS catalog tests start a throw-away PostgreSQL 15 with
# PostGIS 3 (no system service); a pair whose first part is an absolute path is met when that file
# exists (PostGIS has no command of its own). Installed with apt-get when run as root, else named.
WEB_DEBS := npm:npm
TEST_DEBS := chromium:chromium chromedriver:chromium-driver pdftoppm:poppler-utils exiftool:libimage-exiftool-perl
TEST_DEBS += /usr/lib/postgresql/15/bin/initdb:postgresql-15 /usr/share/postgresql/15/extension/postgis.control:postgresql-15-postgis-3
define debian_need
	@missing=(); for pair in $(1); do need="$${pair%%:*}"; \
	  case "$$need" in /*) [ -e "$$need" ];; *) command -v "$$need" >/dev/null 2>&1;; esac || missing+=("$${pair#*:}"); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make $@: installing Debian packages $${missing[*]}"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${missing[@]}" >/dev/null \
	      || { echo "make $@: apt-get install $${missing[*]} failed" >&2; exit 1; }; \
	  else \
	    echo "make $@ needs the Debian packages: $${missing[*]}" >&2; \
	    echo "  install them (sudo apt-get install $${missing[*]}) or run make $@ as root" >&2; exit 1; \
	  fi; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py $(CONSTRAINTS) | system-web
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	@# MicaSense's library, for the radiometry cross-check only: without its declared
	@# dependencies (opencv-python would shadow the headless OpenCV, and it asks for GDAL's
	@# Python bindings); what its radiance code needs is in the dev extra
	$(BIN)/python -m pip install -q --no-deps -c $(CONSTRAINTS) micasense-imageprocessing
	@touch $@

install: $(STAMP) web

system-web:
	$(call debian_need,$(WEB_DEBS))

system-test:
	$(call debian_need,$(TEST_DEBS))

# The web map's JavaScript (MapLibre GL) comes from the npm registry at set-up, never from a CDN:
# npm ci in api/web, then copied into api/static/vendor (package data). Every package build
# (setup.py) does the same, so a wheel carries it.
web: system-web
	@$(PYTHON) api/web/vendor.py

demo: install
	$(BIN)/belcheer --workspace $(DEMO_WS) demo --host $(HOST) --port $(PORT)

# the same pipeline without starting the server (used by tests and CI)
demo-run: install
	$(BIN)/belcheer --workspace $(DEMO_WS) demo --no-serve

serve: install
	$(BIN)/belcheer --workspace $(DEMO_WS) serve --host $(HOST) --port $(PORT)

test: install system-test
	@$(BIN)/python -m pytest -n 2 --dist loadfile --timeout 900 --nbmake --nbmake-timeout=900 --durations=20 \
	  tests notebooks $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser" tests $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check belcheer ingest orthomosaic indices zoning api tests bench

# the server deployment on this machine, on loopback (belcheer/localcluster.py): PostgreSQL 15 +
# PostGIS from a project-local data folder (pg_ctl, no system service), SeaweedFS S3, a Dask
# scheduler with 2 workers, 2 API replicas and a belcheer worker; prints the URLs. Its data stays
# in $(CLUSTER_DIR) across cluster-down/cluster (make cluster-down PURGE=1 removes it).
CLUSTER_DIR ?= .cluster
cluster: install system-test
	@$(BIN)/python -m belcheer.localcluster up --dir $(CLUSTER_DIR)

cluster-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m belcheer.localcluster down --dir $(CLUSTER_DIR) $(if $(PURGE),--purge); \
	else echo "no environment ($(BIN)/python): nothing to stop"; fi

# peer tools: Debian libimage-exiftool-perl and gdal-bin, and `pip install titiler.application`;
# bench/cluster.py starts a throw-away PostgreSQL + PostGIS (make system-test installs them)
bench: install system-test
	@for b in ingest indices zonal tiles simulate mosaic cluster; do \
	  echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit $$?; done

# refresh the constraints file from the current environment (run after changing dependencies)
lock: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(DEMO_WS) .pytest_cache api/web/node_modules api/static/vendor build
