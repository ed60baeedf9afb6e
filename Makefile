# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the stub is installed as a wheel (its .pth file, which serves torch.sagemaker, is not in editable installs) and
# reinstalled when its files change
STUB := stubs/smdistributed-stub
STUB_STAMP := $(VENV)/.stub-installed
STUB_FILES := $(STUB)/pyproject.toml $(STUB)/setup.py $(STUB)/smdistributed_stub.pth $(shell find $(STUB) -name '*.py' -not -path '*/build/*' 2>/dev/null)
# cfn-lint, checkov and parliament get an environment of their own: checkov pins an older boto3 than smjobs needs
LINT_VENV  := $(VENV)/lint
LINT_STAMP := $(LINT_VENV)/.installed
# A user's environment with each SageMaker SDK major already installed (and no smjobs): the wheel test installs
# smjobs into each, checks the SDK is left as it was, and runs the submission and SDK-object tests there.
SDK_V2 := $(VENV)/sdk-v2
SDK_V3 := $(VENV)/sdk-v3
SDK_ENV_PACKAGES := 'moto[server]>=5.1' 'pytest>=8' 'pytest-xdist>=3.5' 'hypothesis>=6.100' 'sagemaker-training>=5' \
	'sagemaker-pytorch-training>=3' pathspec typer rich pydantic pyyaml
# pip options for torch, e.g. an index of CPU-only wheels on a machine without one on local disk (docs/index.md, "Prerequisites")
TORCH_PIP_OPTS ?=

# No AWS account is needed: the demo and the tests talk to moto. The SDK's telemetry is off for the tests (users
# keep their own SDK config and warnings: smjobs sets neither for them).
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export SAGEMAKER_USER_CONFIG_OVERRIDE := $(CURDIR)/.ci/sagemaker-config.yaml
# Python writes byte-code, as on users' machines and in SageMaker's containers (some CI images turn it off)
unexport PYTHONDONTWRITEBYTECODE
# MkDocs' and Material's notices about MkDocs 2 (printed on every build; the site builds with MkDocs 1.6)
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.PHONY: demo test test-fast lint docs clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: it resolves to the CPU wheel on local disk instead of a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_OPTS) torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the local stand-in for SageMaker's smdistributed (SMDDP, SMP v1) and torch.sagemaker (SMP v2); never uploaded with a job
$(STUB_STAMP): $(STUB_FILES) | $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(STUB)
	rm -rf $(STUB)/build $(STUB)/*.egg-info
	touch $(STUB_STAMP)

$(LINT_STAMP): Makefile | $(STAMP)
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/python -m pip install --quiet 'cfn-lint>=1.20,<2' 'checkov>=3.2,<4' 'parliament>=1.6,<2'
	touch $(LINT_STAMP)

# $(VENV)/sdk-v2 and $(VENV)/sdk-v3: torch, the SDK major, and what the tests there need
SDK_v2 := 'sagemaker>=2.257,<3'
SDK_v3 := 'sagemaker>=3.27,<4'
$(VENV)/sdk-%/.installed: | $(STAMP)
	$(PYTHON) -m venv $(VENV)/sdk-$*
	$(VENV)/sdk-$*/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/sdk-$*/bin/python -m pip install --quiet $(TORCH_PIP_OPTS) torch==2.13.0
	$(VENV)/sdk-$*/bin/python -m pip install --quiet $(SDK_$*) $(SDK_ENV_PACKAGES)
	touch $@

demo: $(STUB_STAMP)
	$(BIN)/python -m smjobs.demo

# ruff on the code; import-linter's layer, edge and no-cycle contracts; cfn-lint, checkov and parliament on the CloudFormation template and every policy, failing on
# any finding that infra/lint-allowlist.yaml does not list with a reason
lint: $(STAMP) $(LINT_STAMP)
	$(BIN)/ruff check .
	# the layer contracts in pyproject.toml: an import that climbs back up fails with both modules' names
	LINT_IMPORTS=$(CURDIR)/$(BIN)/lint-imports .ci/lint-imports
	$(BIN)/python -m smjobs.infra.lint --tools $(LINT_VENV)/bin

# every test on both cores (pytest-xdist), a file per worker at a time (--dist loadfile: a file's shared runs and
# fixtures, such as the wheel, are made once). Measured on 2 cores: the integration tests took 17.7 min one at a
# time and 12.5 min on two workers; most of their time is torch's import in each process a run starts.
test: $(STUB_STAMP) $(SDK_V2)/.installed $(SDK_V3)/.installed lint
	SMJOBS_LINT_TOOLS=$(CURDIR)/$(LINT_VENV)/bin SMJOBS_SDK_ENVS=$(CURDIR)/$(SDK_V2):$(CURDIR)/$(SDK_V3) \
		$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests/unit tests/integration

# the edit-test loop: tests/unit alone, on both cores
test-fast: $(STUB_STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=10 tests/unit

# the documentation site (docs/, mkdocs.yml) into site/; the tests build it with --strict
docs: $(STUB_STAMP)
	$(BIN)/python -m mkdocs build --strict

# what the environments, the builds (setuptools writes the egg-info beside each mapped package folder) and the
# tests leave behind
clean:
	rm -rf $(VENV) build dist site *.egg-info entry_points/*.egg-info jobs/*.egg-info stubs/*/build stubs/*/*.egg-info \
		.pytest_cache .ruff_cache .hypothesis .import_linter_cache
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
