# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# cfn-lint, checkov and parliament get an environment of their own: checkov pins an older boto3 than smjobs needs
LINT_VENV  := $(VENV)/lint
LINT_STAMP := $(LINT_VENV)/.installed

# No AWS account is needed: the demo and the tests talk to moto.
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export SAGEMAKER_USER_CONFIG_OVERRIDE := $(CURDIR)/.ci/sagemaker-config.yaml

.PHONY: demo test lint unit integration clean

$(STAMP): setup.cfg pyproject.toml stubs/smdistributed-stub/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: it resolves to the CPU wheel on local disk instead of a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the local stand-in for SageMaker's smdistributed (SMDDP, SMP v1); never uploaded with a job
	$(BIN)/python -m pip install --quiet -e stubs/smdistributed-stub
	touch $(STAMP)

$(LINT_STAMP): Makefile | $(STAMP)
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/python -m pip install --quiet 'cfn-lint>=1.20,<2' 'checkov>=3.2,<4' 'parliament>=1.6,<2'
	touch $(LINT_STAMP)

demo: $(STAMP)
	$(BIN)/python -m smjobs.demo

# ruff on the code; import-linter's layer, edge and no-cycle contracts; cfn-lint, checkov and parliament on the CloudFormation template and every policy, failing on
# any finding that infra/lint-allowlist.yaml does not list with a reason
lint: $(STAMP) $(LINT_STAMP)
	$(BIN)/ruff check .
	# the layer contracts in pyproject.toml: an import that climbs back up fails with both modules' names
	LINT_IMPORTS=$(CURDIR)/$(BIN)/lint-imports .ci/lint-imports
	$(BIN)/python -m smjobs.infra.lint --tools $(LINT_VENV)/bin

test: $(STAMP) lint
	SMJOBS_LINT_TOOLS=$(CURDIR)/$(LINT_VENV)/bin $(BIN)/python -m pytest -q --durations=15

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
