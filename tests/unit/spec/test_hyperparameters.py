"""Hyperparameters reach the script intact through the SDK encoding and the real container toolkit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smjobs.checks.validate import validate_spec
from smjobs.request.training import build_request
from smjobs.spec.hyperparameters import looks_secret

import smjobs_runtime as hparams

TRICKY = {
    "layers": [256, 128, 64],
    "names": ["it's", 'say "hi"', "a,b=c", "ünï"],
    "optimizer": {"name": "adamw", "betas": [0.9, 0.95], "schedule": {"warmup": 100, "kind": "cosine"}},
    "empty_list": [],
    "flag": True,
    "off": False,
    "lr": 3e-4,
    "tiny": 1e-12,
    "steps": 1000,
    "label": "plain text",
}

TOOLKIT = """
import json, sys
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"argv": env.to_cmd_args(), "SM_HPS": env.to_env_vars()["SM_HPS"]}))
"""


def container_view(tmp_path, hyperparameters_wire: dict) -> dict:
    """What SageMaker's toolkit derives from the HyperParameters map of a CreateTrainingJob request."""
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters_wire))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config / "inputdataconfig.json").write_text("{}")
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "SM_STUDIO_LOCAL_MODE": "true"}
    done = subprocess.run([sys.executable, "-c", TOOLKIT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def decode(value, like):
    """How entry_points' argument types read a value the spec gave as ``like``."""
    if isinstance(like, bool):
        return hparams.boolean(value)
    if isinstance(like, list):
        return hparams.json_list(value) if isinstance(value, str) else value
    if isinstance(like, dict):
        return hparams.json_dict(value) if isinstance(value, str) else value
    return type(like)(value)


def test_lists_dicts_bools_and_numbers_arrive_intact(spec_data, tmp_path):
    spec = validate_spec({**spec_data, "hyperparameters": TRICKY})
    wire = build_request(spec).create_training_job["HyperParameters"]
    view = container_view(tmp_path, wire)
    argv = view["argv"]
    as_args = {argv[i][2:]: argv[i + 1] for i in range(0, len(argv), 2)}
    sm_hps = json.loads(view["SM_HPS"])
    for key, original in TRICKY.items():
        assert decode(as_args[key], original) == original, f"--{key} {as_args[key]!r}"
        assert decode(sm_hps[key], original) == original, f"SM_HPS[{key}] = {sm_hps[key]!r}"


def test_without_json_text_the_toolkit_loses_dicts(tmp_path):
    """The reason for the encoding: a dict sent as is reaches argv as 'k=v' with its nesting gone."""
    wire = {"optimizer": json.dumps({"name": "adamw", "betas": [0.9, 0.95]}), "names": json.dumps(["a", "b"])}
    argv = container_view(tmp_path, wire)["argv"]
    as_args = {argv[i][2:]: argv[i + 1] for i in range(0, len(argv), 2)}
    assert as_args["optimizer"] == "betas=[0.9, 0.95],name=adamw"
    with pytest.raises(json.JSONDecodeError):
        json.loads(as_args["names"])  # "['a', 'b']" is a Python repr, not JSON


def test_train_script_parses_the_toolkit_argv(spec_data, tmp_path, monkeypatch):
    """The user's hyperparameters arrive as flags; the strategy's settings only through the environment."""
    from smjobs.entry_points.train import parse_args

    hps = {"hidden_sizes": [32, 16], "optimizer": {"name": "adamw", "betas": [0.8, 0.9]}}
    spec_data.pop("source_dir")
    spec = validate_spec({**spec_data, "entry_point": "train.py", "hyperparameters": hps,
                          "distribution": {"type": "fsdp", "cpu_offload": True}})
    request = build_request(spec)
    view = container_view(tmp_path, request.create_training_job["HyperParameters"])
    assert sorted(a for a in view["argv"] if a.startswith("--")) == ["--hidden_sizes", "--optimizer"]
    monkeypatch.setenv(hparams.DISTRIBUTION_ENV, request.create_training_job["Environment"][hparams.DISTRIBUTION_ENV])
    args = parse_args(view["argv"])
    assert args.hidden_sizes == [32, 16]
    assert args.optimizer == {"name": "adamw", "betas": [0.8, 0.9]}
    assert args.fsdp_cpu_offload is True
    assert args.parallel == "fsdp" and args.mixed_precision == "bf16"


@pytest.mark.parametrize("key,value,expected", [
    ("db_password", "x", "names a credential"),
    ("GITHUB_TOKEN", "x", "names a credential"),
    ("note", "AKIA" + "ABCDEFGHIJKLMNOP", "access key ID"),
    ("blob", "-----BEGIN RSA PRIVATE KEY-----", "private key"),
    ("model_name", "bert-base-uncased", None),
    ("sha", "0123456789abcdef0123456789abcdef01234567", None),  # a git SHA is not a secret key
    ("layers", [1, 2, 3], None),
])
def test_secret_detection(key, value, expected):
    reason = looks_secret(key, value)
    assert (reason is None) if expected is None else (expected in reason)
