# splitsdk: `make demo` and `make test` are the two commands of the README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SETUP_HASH := $(shell cat requirements.txt requirements-nodeps.txt requirements-test-nodeps.txt pyproject.toml host_tools/setup_system.sh 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.setup-$(SETUP_HASH)
DEMO_DIR ?= out/demo

.PHONY: setup test demo bench lint clean firmware-examples

setup: $(STAMP)

$(STAMP):
	bash host_tools/setup_system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -r requirements-test-nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/splitsdk toolchain install --no-progress cortex-a7 host
	rm -f $(VENV)/.setup-*
	touch $@

test: setup
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -rs tests

# ruff, then mypy over the real package (`splitsdk.*` resolved through a link tree: host_tools/typecheck.py)
lint: setup
	$(VENV)/bin/ruff check .
	$(PY) host_tools/typecheck.py

demo: setup
	bash host_tools/demo.sh $(DEMO_DIR)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf out build dist *.egg-info

# Regenerate the checked-in example projects (golden files; tests/test_codegen_examples.py checks drift).
firmware-examples: setup
	$(PY) host_tools/regen_firmware_examples.py
