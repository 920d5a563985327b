# One entry point for people and CI. `make test` works from a clean clone: it creates .venv with the Lambda
# runtime's Python (3.13) when pyenv has it, else python3 (3.11+), installs the pinned dependencies, lints and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY313 := $(shell command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.13.0/bin/python3
PYTHON ?= $(shell if [ -x "$(PY313)" ]; then echo "$(PY313)"; elif command -v python3.13 >/dev/null 2>&1; then echo python3.13; else echo python3; fi)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv lint test sam-venv validate build template-check deploy

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	# Lambda's view of the code: the function folder and the first-party layer on sys.path, plus the dev tools.
	printf '%s\n' "$(CURDIR)/layers/core/python" "$(CURDIR)/functions/sender" "$(CURDIR)/tools" \
		> "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/nxcloud_wa_paths.pth"
	touch $@

venv: $(STAMP) ## Create .venv with the pinned dependencies

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint template-check ## Lint, validate and build the SAM stack, then run every test
	$(BIN)/python -m pytest

# AWS SAM CLI in its own environment: it pins boto3, click, cfn-lint and jsonschema tightly. Offline commands only
# need a region (any) and no credentials; telemetry off.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_OFFLINE := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
BUILT := .aws-sam/build
# Every shared object in a folder is an ELF file for arm64 (e_machine 183), or exit non-zero naming those that are not.
define ONLY_AARCH64
import pathlib, sys
bad = [str(p) for p in pathlib.Path(sys.argv[1]).rglob("*.so*") if p.is_file() and p.read_bytes()[18:20] != b"\xb7\x00"]
sys.exit("not arm64: " + " ".join(bad) if bad else 0)
endef
export ONLY_AARCH64

$(SAM_STAMP): requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/sam.txt
	touch $@

sam-venv: $(SAM_STAMP) ## Create .venv-sam with the pinned AWS SAM CLI and cfn-lint

validate: $(SAM_STAMP) ## sam validate --lint and cfn-lint on template.yaml (offline)
	$(SAM_OFFLINE) $(SAM_VENV)/bin/sam validate --lint --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml

# No Docker: the layers' Makefile fetches wheels for Lambda's platform, and the function has no requirements.txt.
# --cached reuses a layer's build until its folder or Makefile changes. Then check what would be deployed.
build: $(SAM_STAMP) ## sam build (no Docker) into .aws-sam/build, and check the artifacts
	$(SAM_OFFLINE) $(SAM_VENV)/bin/sam build --template-file template.yaml --cached --parallel
	test -f $(BUILT)/SenderFunction/app.py
	test ! -e $(BUILT)/SenderFunction/requirements.txt
	test -f $(BUILT)/CoreLayer/python/nxcloud_wa/__init__.py
	test -z "$$(find $(BUILT)/SenderFunction -name __pycache__)"
	# Bytecode only as compiled for the runtime (CPython 3.13), never a stale one copied from the source tree.
	test -z "$$(find $(BUILT)/CoreLayer $(BUILT)/DependenciesLayer -name '*.pyc' ! -name '*.cpython-313.pyc')"
	ls $(BUILT)/DependenciesLayer/python/pydantic_core/*.cpython-313-aarch64-linux-gnu.so
	$(PYTHON) -c "$$ONLY_AARCH64" $(BUILT)/DependenciesLayer/python
	test ! -e $(BUILT)/DependenciesLayer/python/botocore
	du -sh $(BUILT)/DependenciesLayer $(BUILT)/CoreLayer $(BUILT)/SenderFunction

template-check: validate build ## What CI checks of the SAM stack: validate, then build

deploy: build ## sam deploy --guided (needs AWS credentials; asks for the parameters, saves them in samconfig.toml)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --guided

openapi: $(STAMP) ## Regenerate openapi.json from the API's code (a test fails when it is stale)
	$(BIN)/python -c 'import json, api; print(json.dumps(json.loads(api.openapi_document()), indent=2, ensure_ascii=False))' > openapi.json

# `sam local invoke -e` without Docker (tools/local_stack/invoke.py): the handler in-process with Lambda's sys.path, a
# context with the template's timeout, your environment overrides; result JSON on stdout, logs on stderr. With no
# NXCLOUD_SECRET_ID/DLQ_URL/SEND_QUEUE_URL/IDEMPOTENCY_TABLE set it starts an ephemeral local stack. See events/README.md.
.PHONY: invoke
invoke: $(STAMP) ## Invoke the handler on one event: make invoke EVENT=events/api-send-sync.json [ARGS="--times 2"]
	@test -n "$(EVENT)" || { echo 'usage: make invoke EVENT=events/<file>.json [ARGS="--times 2 --env-vars FILE"]' >&2; exit 2; }
	@PYTHONPATH="$(CURDIR)/tools$${PYTHONPATH:+:$$PYTHONPATH}" $(BIN)/python -m local_stack.invoke $(ARGS) "$(EVENT)"

# The whole stack on 127.0.0.1 without Docker or AWS (tools/local_stack): moto + the NXCloud simulator + the real
# handler behind an emulated SQS event source and REST API. Pushes events/ through both paths and prints the outcomes;
# ARGS=--serve keeps it running for curl, the AWS CLI and `nxwa --local`.
.PHONY: run
run: $(STAMP) ## Run the whole stack locally and push the sample messages through it [ARGS=--serve]
	$(BIN)/python -m local_stack $(ARGS)

.PHONY: bench
bench: $(STAMP) ## Cold start, handler overhead, batch latency and memory, side by side (printed, not asserted)
	$(BIN)/python -m bench $(BENCH_ARGS)
