# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TA := $(BIN)/traffic-anomalies
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint bench evaluate docs db-up db-down clean

install: $(STAMP)

# requirements.lock pins every transitive dependency, so a fresh install resolves the same way.
# --no-compile: Python compiles what is imported on first use; byte-compiling every installed
# module up front took ~20 s longer than that on a fresh venv.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -c requirements.lock -e '.[dev]' 2>&1 | { grep -v 'is ignored' || true; }
	touch $@

db-up: install
	$(TA) db up

db-down: install
	$(TA) db down

# The main job end to end on the embedded default: sample lake, local database, nightly run.
demo: install
	$(TA) demo

# Every test: database up, the pytest suite (dbt build on generated lakes included), lint.
# Two pytest workers (tests/python/conftest.py keeps a module, and modules sharing a build, on
# one worker); then the tests that compare the whole database before and after, with no other
# test beside them, but beside the lint, which only reads the database (its output is shown
# after theirs).
TEST_WORKERS ?= 2
test: install
	$(TA) db up
	eval "$$($(TA) db env)" && $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not whole_database"
	log=$$(mktemp) && { $(MAKE) --no-print-directory lint >$$log 2>&1 & lint=$$!; } && \
	{ eval "$$($(TA) db env)" && $(BIN)/pytest -q -m whole_database; tests=$$?; } ; \
	wait $$lint; linted=$$?; cat $$log; rm -f $$log; [ $$tests -eq 0 ] && [ $$linted -eq 0 ]

lint: install
	eval "$$($(TA) db env)" && $(BIN)/sqlfluff lint models tests/generic analyses --processes 2

# A MADlib build for the tests (tests/python/conftest.py reads the same variable) and for
# `bench pca`, which measures MADlib beside madlib_compat when the tarball is there.
TA_MADLIB_TARBALL ?= ../shared/madlib/madlib-2.1.0-pg15-debian12-x86_64.tar.gz
export TA_MADLIB_TARBALL

# Heavy measurements, never part of `make test`: results in bench/results/*.json and *.md.
bench: install
	$(TA) db up
	$(TA) bench pca $(if $(wildcard $(TA_MADLIB_TARBALL)),--madlib $(TA_MADLIB_TARBALL))
	$(TA) bench nightly

# Detection quality on 8 scenarios x 8 seeds of generated lakes (64 dbt builds): the committed
# bench/results/evaluation.json is a run of exactly this.
evaluate: install
	$(TA) db up
	$(TA) evaluate --users 100 --seeds 1 2 3 4 5 6 7 8 --jobs 2 --out bench/results/evaluation.json

docs: install
	$(TA) docs

clean:
	rm -rf target logs
