"""A user's own script is first-class: where its code is found, and its argparse checked before anything starts."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from smjobs.api import load_spec
from smjobs.errors import SpecError
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR

SCRIPT = textwrap.dedent('''
    import argparse
    import smjobs_runtime as smr

    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", "--learning-rate", type=float, default=0.1)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--depth", type=int, choices=[2, 4, 8], default=2)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--layers", type=int, nargs="+", default=[8])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--flags", type=smr.json_dict, default={})
    args = p.parse_args()
''')


def project(tmp_path, hyperparameters, script=SCRIPT, **spec):
    (tmp_path / "my_train.py").write_text(script)
    data = {"name": "user-job", "entry_point": "my_train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
            "hyperparameters": hyperparameters, **spec}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(path) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return {p.path: p.render() for p in info.value.problems}


def test_a_plain_script_validates_and_gets_only_its_own_flags(tmp_path):
    hps = {"epochs": 3, "learning-rate": 0.01, "optimizer": "adam", "depth": 4, "data-dir": "/opt/ml/input/data/train",
           "flags": {"a": 1}}
    spec = load_spec(project(tmp_path, hps, distribution={"type": "fsdp", "sharding": "shard_grad_op"}))
    assert spec.source_dir == str(tmp_path)  # the spec file's folder, since no source_dir was given
    request = build_request(spec)
    script_flags = {k for k in request.create_training_job["HyperParameters"] if not k.startswith("sagemaker_")}
    assert script_flags == set(hps)
    assert request.strategy_settings == {"parallel": "fsdp", "fsdp_sharding": "shard_grad_op", "mixed_precision": "bf16",
                                         "fsdp_cpu_offload": False}


@pytest.mark.parametrize("key,value,fragment", [
    ("epochs", "two", "--epochs is type=int (my_train.py:6), which cannot read 'two'"),
    ("epochs", True, "which cannot read 'True'"),
    ("lr", "fast", "--lr is type=float"),
    ("optimizer", "adamw", "--optimizer takes one of sgd, adam (my_train.py:8), not 'adamw'"),
    ("depth", 3, "--depth takes one of 2, 4, 8"),
    ("amp", True, "--amp takes no value (my_train.py:10), but SageMaker passes every hyperparameter as --amp True"),
    ("layers", [8, 8], "--layers takes several values (nargs='+', my_train.py:11), but a list arrives as one JSON text"),
    ("epoch", 3, "does not accept --epoch; argparse would stop the job at start-up. To fix: did you mean 'epochs'?"),
])
def test_a_value_argparse_would_reject_is_caught(tmp_path, key, value, fragment):
    found = problems(project(tmp_path, {"data-dir": "/x", key: value}))
    assert fragment in found[f"hyperparameters.{key}"]


def test_a_required_option_must_be_given(tmp_path):
    found = problems(project(tmp_path, {"epochs": 1}))
    assert "my_train.py (your script) requires --data-dir (my_train.py:12), which no hyperparameter gives" in found["hyperparameters"]


def test_parse_known_args_accepts_unknown_keys_but_still_checks_known_ones(tmp_path):
    script = SCRIPT.replace("args = p.parse_args()", "args, _ = p.parse_known_args()")
    assert load_spec(project(tmp_path, {"data-dir": "/x", "anything": 1}, script=script)).hyperparameters["anything"] == 1
    found = problems(project(tmp_path, {"data-dir": "/x", "epochs": "many"}, script=script))
    assert "cannot read 'many'" in found["hyperparameters.epochs"]


def test_a_missing_script_names_the_folder_searched(tmp_path):
    path = project(tmp_path, {})
    (tmp_path / "my_train.py").unlink()
    found = problems(path)
    assert f"'my_train.py' does not exist in {tmp_path} (the source_dir searched)" in found["entry_point"]
    data = yaml.safe_load(path.read_text())
    with pytest.raises(SpecError) as info:  # plain data, no file: only smjobs' bundled scripts are candidates
        load_spec(data)
    message = info.value.problems[0].render()
    assert f"not one of smjobs' bundled scripts (searched {ENTRY_POINTS_DIR}: " in message and "set source_dir" in message


def test_a_bundled_script_name_beside_a_spec_without_that_file_means_the_bundled_one(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"name": "bundled", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.xlarge"}}))
    assert load_spec(path).source_dir is None
    (tmp_path / "train.py").write_text("print('mine')\n")  # the user's own train.py beside the spec wins
    assert load_spec(path).source_dir == str(tmp_path)


def test_relative_paths_in_a_spec_file_are_relative_to_the_file(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    path = project(tmp_path, {"data-dir": "/x"}, inputs={"train": {"uri": "data"}})
    monkeypatch.chdir("/")
    assert load_spec(path).inputs["train"].uri == str(tmp_path / "data")


def test_smjobs_environment_variables_are_reserved(tmp_path):
    found = problems(project(tmp_path, {"data-dir": "/x"}, environment={"SMJOBS_DISTRIBUTION": "{}"}))
    assert "is set by smjobs" in found["environment.SMJOBS_DISTRIBUTION"]


def test_a_channel_the_script_reads_must_be_defined(user_project):
    """my_train.py reads os.environ["SM_CHANNEL_TRAIN"]: without inputs.train the job would die with a KeyError on
    SageMaker; validate names the channel and whose script reads it."""
    data = yaml.safe_load((user_project / "job.yaml").read_text())
    data.pop("inputs")
    (user_project / "job.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        load_spec(user_project / "job.yaml")
    (problem,) = info.value.problems
    assert problem.path == "inputs.train" and "my_train.py (your script) reads channel 'train'" in problem.message
    assert "add inputs.train" in problem.fix


def test_problems_say_whose_script_they_describe(tmp_path):
    """A spec outside the project naming train.py gets smjobs' bundled train.py, and says so; a user's script is
    named by its path."""
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump({"name": "mine", "entry_point": "train.py",
                                         "compute": {"instance_type": "ml.g5.12xlarge"}, "hyperparameters": {"stpes": 3}}))
    with pytest.raises(SpecError) as bundled:
        load_spec(spec_file)
    assert "the bundled train.py does not accept --stpes" in bundled.value.problems[0].message
    (tmp_path / "train.py").write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--steps')\np.parse_args()\n")
    with pytest.raises(SpecError) as mine:
        load_spec(spec_file)
    assert f"{tmp_path / 'train.py'} (your script) does not accept --stpes" in mine.value.problems[0].message
