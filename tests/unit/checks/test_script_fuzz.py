"""No spec that validate accepts is refused by a bundled script's argparse at start-up: 2,000 generated
hyperparameter sets for train.py, each accepted one turned into the script's argv the way SageMaker's container
toolkit does it (its own ``read_hyperparameters`` decoding and ``mapping.to_cmd_args``) and parsed by train.py's
real ``parse_args``."""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError

NAMES = ["model", "steps", "global_batch_size", "grad_accum_steps", "lr", "hidden_sizes", "optimizer", "track_memory",
         "fsdp_cpu_offload", "mixed_precision", "in_features", "n_layers", "seed", "log_every", "mp_parameters"]
VALUES = st.one_of(
    st.sampled_from(["mlp", "gpt", "GPT", "cnn", "fp32", "bf16", "fp64", "abc", "", "NaN", "true", "no", "[1, a]",
                     "-1e-05", "-0.5", "-x", "-inf"]),
    st.integers(min_value=-3, max_value=300), st.floats(allow_nan=True, allow_infinity=False, width=32),
    st.booleans(), st.lists(st.integers(min_value=1, max_value=64), max_size=3),
    st.dictionaries(st.sampled_from(["name", "betas", "lr"]), st.sampled_from(["adamw", "sgd", 0.9, [0.9, 0.95]]),
                    max_size=2),
)


def toolkit_argv(wire: dict) -> list[str]:
    """The script's argv from CreateTrainingJob.HyperParameters, by the container toolkit's own functions."""
    from sagemaker_training import mapping

    decoded = {}
    for key, value in wire.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            decoded[key] = value
    return mapping.to_cmd_args({k: v for k, v in decoded.items() if not k.startswith("sagemaker_")})


# the same 2,000 examples on every run (a CI run fails only for a change); SMJOBS_FUZZ_RANDOM=1 explores new ones
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=os.environ.get("SMJOBS_FUZZ_RANDOM") != "1")
@given(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5))
def test_every_accepted_spec_starts_the_bundled_script(hyperparameters):
    from smjobs.entry_points.train import parse_args
    from smjobs.request.training import build_request

    hyperparameters = {k: v for k, v in hyperparameters.items() if not (isinstance(v, float) and math.isnan(v)) or k == "lr"}
    data = {"name": "fuzz", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
            "distribution": {"type": "ddp", "processes_per_host": 1}, "hyperparameters": hyperparameters}
    try:
        spec = validate_spec(data)
    except SpecError:
        return  # refused before launch: nothing started
    argv = toolkit_argv(build_request(spec).create_training_job["HyperParameters"])
    try:
        parse_args(argv)
    except SystemExit as exc:  # argparse refuses at start-up: validate should have
        pytest.fail(f"validate accepted {hyperparameters!r}, but train.py refuses {argv!r} (exit {exc.code})")
