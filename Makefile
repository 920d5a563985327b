# One entry point for people and CI. `make test` works from a clean clone: it creates .venv with the Lambda
# runtime's Python (3.13) when pyenv has it, else python3 (3.11+), installs the pinned dependencies, lints and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY313 := $(shell command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.13.0/bin/python3
PYTHON ?= $(shell if [ -x "$(PY313)" ]; then echo "$(PY313)"; elif command -v python3.13 >/dev/null 2>&1; then echo python3.13; else echo python3; fi)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv lint typecheck check test sam-venv validate build template-check deploy

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Lambda's view of the code: each function's folder and the first-party layer on sys.path, plus the dev tools (as
# pytest's pythonpath in pyproject.toml). Rewritten whenever this list changes, without reinstalling anything.
CODE_PATHS := layers/core/python functions/sender functions/webhook functions/publisher functions/planner tools
PATHS := $(VENV)/.paths
$(PATHS): $(STAMP) Makefile
	printf '%s\n' $(addprefix $(CURDIR)/,$(CODE_PATHS)) \
		> "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/nxcloud_wa_paths.pth"
	touch $@

venv: $(PATHS) ## Create .venv with the pinned dependencies

lint: $(PATHS) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PATHS) ## mypy --strict on what ships to Lambda (functions/, layers/)
	$(BIN)/mypy

# Extra pytest arguments for `make check` and `make test`, e.g. PYTEST_ARGS="-x -k signing".
PYTEST_ARGS ?=

check: lint typecheck ## Fast: lint, types, the unit and tools tests (tests/unit, tests/tools); no moto server, no SAM build
	$(BIN)/python -m pytest tests/unit tests/tools -q $(PYTEST_ARGS)

# check's parts, the SAM checks, then every suite (unit included) in one pytest run.
test: lint typecheck template-check ## Lint, type-check, validate and build the SAM stack, then run every test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# AWS SAM CLI in its own environment: it pins boto3, click, cfn-lint and jsonschema tightly. Offline commands only
# need a region (any) and no credentials; telemetry off.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_OFFLINE := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
BUILT := .aws-sam/build
# The Python programs make runs (none is embedded here, so ruff and the tests see them).
CHECKS := tools/checks

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
	# Every shared object is an ELF file for arm64, or the build fails naming those that are not.
	$(PYTHON) $(CHECKS)/only_aarch64.py $(BUILT)/DependenciesLayer/python
	test ! -e $(BUILT)/DependenciesLayer/python/botocore
	# phonenumbers ships its time zones (quiet hours), not its geocoder and carrier data (20 MB nothing imports).
	test -d $(BUILT)/DependenciesLayer/python/phonenumbers/tzdata
	test ! -e $(BUILT)/DependenciesLayer/python/phonenumbers/geodata -a ! -e $(BUILT)/DependenciesLayer/python/phonenumbers/carrierdata
	du -sh $(BUILT)/DependenciesLayer $(BUILT)/CoreLayer $(BUILT)/SenderFunction

template-check: validate build ## What CI checks of the SAM stack: validate, then build

deploy: build ## sam deploy --guided (needs AWS credentials; asks for the parameters, saves them in samconfig.toml)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --guided

docs: $(PATHS) ## Regenerate the documentation tables the code holds (docs/errors.md); a test fails when stale
	$(BIN)/python -m docgen

openapi: $(PATHS) ## Regenerate openapi.json from the API's code (a test fails when it is stale)
	$(BIN)/python -c 'import json, api; print(json.dumps(json.loads(api.openapi_document()), indent=2, ensure_ascii=False))' > openapi.json

# `sam local invoke -e` without Docker (tools/local_stack/invoke.py): the handler in-process with Lambda's sys.path, a
# context with the template's timeout, your environment overrides; result JSON on stdout, logs on stderr. The function
# is the one template.yaml wires to the event's source (SQS, the stream, an API route), or FUNCTION=<LogicalId>. With
# none of its resource variables set (the sender's: NXCLOUD_SECRET_ID/DLQ_URL/SEND_QUEUE_URL/IDEMPOTENCY_TABLE) it
# starts an ephemeral local stack. See events/README.md.
FUNCTION ?=
.PHONY: invoke
invoke: $(PATHS) ## Invoke a function on one event: make invoke EVENT=events/api-send-sync.json [FUNCTION=] [ARGS="--times 2"]
	@test -n "$(EVENT)" || { echo 'usage: make invoke EVENT=events/<file>.json [FUNCTION=<LogicalId>] [ARGS="--times 2 --env-vars FILE"]' >&2; exit 2; }
	@PYTHONPATH="$(CURDIR)/tools$${PYTHONPATH:+:$$PYTHONPATH}" $(BIN)/python -m local_stack.invoke \
		$(if $(FUNCTION),--function "$(FUNCTION)") $(ARGS) "$(EVENT)"

# The whole stack on 127.0.0.1 without Docker or AWS (tools/local_stack): moto + the NXCloud simulator + the real
# handler behind an emulated SQS event source and REST API. Pushes events/ through both paths and prints progress, the
# outcomes and a verdict; the function's logs go to .local-stack/run-<time>.log (ARGS=--verbose shows them instead).
# ARGS=--serve keeps it running for curl, the AWS CLI and `nxwa --local`.
.PHONY: run
run: $(PATHS) ## Run the whole stack locally and push the sample messages through it [ARGS=--serve]
	$(BIN)/python -m local_stack $(ARGS)

.PHONY: bench
bench: $(PATHS) ## Cold start, handler overhead, batch latency and memory, side by side (printed, not asserted)
	$(BIN)/python -m bench $(BENCH_ARGS)

# ---------------------------------------------------------------------------------------------------------------------
# Security scans (CI runs `make security`). checkov over template.yaml runs offline, always. pip-audit needs its data
# source, PyPI's JSON API for each pinned release (https://pypi.org/pypi/NAME/VERSION/json, its "vulnerabilities"): a
# probe asks for one release first and, when the answer is not that API's, says exactly what came back and fails,
# unless SECURITY_ALLOW_NO_AUDIT=1 (then it says that pip-audit did not run). Both tools live in .venv-security.
SEC_VENV := .venv-security
SEC_STAMP := $(SEC_VENV)/.installed
SEC_BIN := $(SEC_VENV)/bin
# Extra pip-audit arguments, e.g. PIP_AUDIT_ARGS="--ignore-vuln GHSA-xxxx" (say why in the commit that sets it).
PIP_AUDIT_ARGS ?=
AUDIT := $(SEC_BIN)/pip-audit --progress-spinner off --desc on --format json $(PIP_AUDIT_ARGS)

$(SEC_STAMP): requirements/security.txt
	$(PYTHON) -m venv $(SEC_VENV)
	$(SEC_BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/security.txt
	touch $@

# $(CHECKS)/pypi_advisory_probe.py: exit 0 when PyPI answers for the first release pinned in the file given, else exit 1
# saying what came back. $(CHECKS)/pip_audit_report.py: pip-audit's JSON report, read: every vulnerability, and every
# package it could not audit (a release PyPI does not know is skipped with a warning, which pip-audit alone would report
# as "No known vulnerabilities found"); fails on either, except the project's own editable install.

.PHONY: security-venv checkov pip-audit security
security-venv: $(SEC_STAMP) ## Create .venv-security with the pinned checkov and pip-audit

checkov: $(SEC_STAMP) ## checkov over template.yaml (offline, .checkov.yaml): fails on any finding not suppressed
	$(SEC_BIN)/checkov --config-file .checkov.yaml
	@echo "checkov: PASSED"

pip-audit: $(SEC_STAMP) $(PATHS) ## pip-audit of the layer's pins and of .venv (dev.txt as installed) [SECURITY_ALLOW_NO_AUDIT=1]
	@if ! $(SEC_BIN)/python $(CHECKS)/pypi_advisory_probe.py layers/deps/requirements.txt; then \
		if [ -n "$(SECURITY_ALLOW_NO_AUDIT)" ]; then \
			echo "pip-audit: NOT RUN: its data source does not answer from here (SECURITY_ALLOW_NO_AUDIT is set)"; exit 0; \
		fi; \
		echo "pip-audit: FAILED: its data source does not answer from here, so nothing was audited" \
			"(SECURITY_ALLOW_NO_AUDIT=1 passes without it)" >&2; \
		exit 1; \
	fi; \
	rm -f $(SEC_VENV)/audit-*.json; status=0; \
	echo "== pip-audit: runtime layer (layers/deps/requirements.txt, every pin as written)"; \
	$(AUDIT) -r layers/deps/requirements.txt --no-deps --disable-pip -o $(SEC_VENV)/audit-layer.json; \
	$(SEC_BIN)/python $(CHECKS)/pip_audit_report.py "runtime layer" $(SEC_VENV)/audit-layer.json || status=1; \
	echo "== pip-audit: test environment (.venv: requirements/dev.txt and all it pulled in, as installed)"; \
	$(AUDIT) --skip-editable --path "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		-o $(SEC_VENV)/audit-dev.json; \
	$(SEC_BIN)/python $(CHECKS)/pip_audit_report.py "test environment" $(SEC_VENV)/audit-dev.json || status=1; \
	if [ $$status = 0 ]; then echo "pip-audit: PASSED"; else echo "pip-audit: FAILED" >&2; fi; \
	exit $$status

# Both scans whatever the first one says, then one line for each: PASSED, FAILED or NOT RUN, and how long it took.
security: $(SEC_STAMP) $(PATHS) ## checkov, then pip-audit when its data source answers; says which ran and how it went
	@set -o pipefail; status=0; log=$(SEC_VENV)/security.log; : > $$log; \
	start=$$SECONDS; $(MAKE) --no-print-directory checkov 2>&1 | tee -a $$log || status=1; iac=$$((SECONDS - start)); \
	start=$$SECONDS; $(MAKE) --no-print-directory pip-audit 2>&1 | tee -a $$log || status=1; deps=$$((SECONDS - start)); \
	echo; echo "== make security"; \
	iac_result=$$(grep -E '^checkov: ' $$log | tail -1); echo "$${iac_result:-checkov: FAILED} ($${iac} s)"; \
	deps_result=$$(grep -E '^pip-audit: ' $$log | tail -1); echo "$${deps_result:-pip-audit: FAILED} ($${deps} s)"; \
	exit $$status

# Property-based tests of the model and of both triggers, hostile inputs, and schemathesis over openapi.json against
# the local API (tests/fuzz; `make test` runs them too, with the derandomized `ci` profile). HYPOTHESIS_PROFILE=long
# runs 20 times the examples, random, and keeps failing examples in .hypothesis/ to replay them first next time.
.PHONY: fuzz
fuzz: $(PATHS) ## Fuzz the model, the SQS trigger and the API [HYPOTHESIS_PROFILE=long] [FUZZ_ARGS="-x -s"]
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest tests/fuzz --hypothesis-show-statistics \
		--durations=10 $(FUZZ_ARGS)

# Fault-injection soak (tools/soak, docs/soak.md): the local stack with NXCloud and AWS faults injected and
# invocations killed as a Lambda timeout kills them; N messages per UNKNOWN_OUTCOME_POLICY (POLICY=both: dead_letter,
# then retry), each followed to its end, and NXCloud's callbacks followed through the webhook and the publisher to
# their events. Prints the ledger; exits 1 on any loss, avoidable duplicate, lost callback, wrong final status or
# missing event. MIX: default, heavy, calm, upstream, aws, kills. soak-ci is what CI runs
# (tests/integration/test_soak.py, also part of `make test`). MODE=campaign (docs/throughput.md): N messages at once
# (up to 10,000 waiting) to NUMBERS business numbers, the simulator enforcing RATE messages per second per number and
# the function's limiter set to it, without the lifecycle; the ledger adds the campaign's rows. MODE=campaign-file:
# one campaign (the engine) of a generated audience file of N rows at RATE, with faults, planner kills, a pause and
# quiet hours; its own ledger (docs/soak.md).
N ?= 1000
SEED ?= 1
MIX ?= default
POLICY ?= both
MODE ?= standard
RATE ?= 50
NUMBERS ?= 1
.PHONY: soak soak-ci
soak: $(PATHS) ## Fault-injection soak and its ledger: make soak N=10000 SEED=1 MIX=default POLICY=both [MODE=campaign|campaign-file RATE=50]
	$(BIN)/python -m soak --messages $(N) --seed $(SEED) --mix $(MIX) --policy $(POLICY) --mode $(MODE) \
		--rate $(RATE) --numbers $(NUMBERS) $(SOAK_ARGS)

soak-ci: $(PATHS) ## The short soak CI runs: 250 messages per policy, fixed seed, heavy mix, both policies
	$(BIN)/python -m pytest tests/integration/test_soak.py -q -p no:logging

# ---------------------------------------------------------------------------------------------------------------------
# The built function under the real `sam local`, in Docker (docs/sam-local.md). lambda-images makes sure the Lambda
# Python 3.13 base images SAM looks for are present, building Debian stand-ins offline where they are absent (needs
# root, Docker, debootstrap, and qemu-user-static for arm64 on x86_64); a real image pulled from AWS is left alone.
# sam-local runs `sam local invoke` on every sample event and `sam local start-api` on arm64 (the template's) and
# x86_64, through tools/sam_local/hostnet.py (every container on the host's network, only 127.0.0.1), and checks each
# result against events/expected.json and against `make invoke`. .ci/run prepares a fresh machine for it.
SAM_LOCAL_ARCHES ?= arm64 x86_64
SAM_LOCAL_ARGS ?=
.PHONY: lambda-images sam-local
lambda-images: $(STAMP) $(SAM_STAMP) ## Lambda base images for sam local: present, or built offline (docs/sam-local.md)
	$(BIN)/python -m lambda_image $(foreach a,$(SAM_LOCAL_ARCHES),--arch $(a))

sam-local: build lambda-images ## sam local invoke + start-api in Docker, arm64 and x86_64, checked [SAM_LOCAL_ARCHES=]
	$(BIN)/python -m sam_local $(foreach a,$(SAM_LOCAL_ARCHES),--arch $(a)) $(SAM_LOCAL_ARGS)
	$(BIN)/python -m pytest tests/sam_local -q -rs -p no:cacheprovider
