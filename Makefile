# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

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

demo: $(STAMP)
	$(BIN)/python -m smjobs.demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
