# One entry point for people and CI. `make test` works from a clean clone: it creates .venv with the Lambda
# runtime's Python (3.13) when pyenv has it, else python3 (3.11+), installs the pinned dependencies, lints and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY313 := $(shell command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.13.0/bin/python3
PYTHON ?= $(shell if [ -x "$(PY313)" ]; then echo "$(PY313)"; elif command -v python3.13 >/dev/null 2>&1; then echo python3.13; else echo python3; fi)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv lint test

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	# Lambda's view of the code: the function folder and the first-party layer on sys.path, plus the dev tools.
	printf '%s\n' "$(CURDIR)/layers/core/python" "$(CURDIR)/functions/sender" "$(CURDIR)/tools" \
		> "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/nxcloud_wa_paths.pth"
	touch $@

venv: $(STAMP) ## Create .venv with the pinned dependencies

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint ## Lint, then run every test
	$(BIN)/python -m pytest
