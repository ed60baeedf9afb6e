"""Spec input never crashes the CLI: any file gives exit 0 or a clean exit 2, and what the service would reject by its
own (Java) rules is caught here. Includes a hypothesis fuzz test over generated specs."""

from __future__ import annotations

import copy
import json
import re
import string

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smjobs.checks.service_model import check, java_to_python_regex
from smjobs.checks.validate import validate_spec
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.request.training import build_request
from smjobs.spec.file import SpecFileError, read_spec_data

runner = CliRunner()
HEAD = "name: n\nentry_point: train.py\ncompute: {instance_type: ml.g5.xlarge}\n"


@pytest.mark.parametrize("text,fragment", [
    (HEAD + "compute: {instance_type: ml.g5.xlarge}\n", "line 4: duplicate key 'compute' (first on line 3)"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e]\n", "more than 100,000 values"),
    (HEAD + "hyperparameters: {x: " + "[" * 40 + "]" * 40 + "}\n", "nested more than 32 levels deep"),
    ("- just\n- a list\n", "a job spec is a mapping of fields, got list"),
    (HEAD + "tags: {a: [unclosed\n", "not valid YAML"),
])
def test_a_file_that_is_not_a_spec_is_refused_cleanly(tmp_path, text, fragment):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecFileError, match=re.escape(fragment)):
        read_spec_data(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output and fragment in result.output.replace("\n", " ")


def test_folders_binary_and_json_duplicates_are_refused(tmp_path):
    assert runner.invoke(app, ["validate", str(tmp_path)]).exit_code == 2
    (tmp_path / "x.yaml").write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8 text" in runner.invoke(app, ["validate", str(tmp_path / "x.yaml")]).output
    (tmp_path / "x.json").write_text('{"name": "a", "name": "b"}')
    assert "duplicate key 'name'" in runner.invoke(app, ["validate", str(tmp_path / "x.json")]).output


def test_yaml_dates_and_binary_stay_the_text_they_were_written_as(tmp_path, spec_data):
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: dated\nentry_point: probe.py\nsource_dir: {spec_data['source_dir']}\n"
                    "compute: {instance_type: ml.g5.xlarge}\ntags: {created: 2024-05-01, at: 2024-05-01T10:00:00Z}\n"
                    "hyperparameters: {blob: !!binary aGVsbG8=}\n")
    data = read_spec_data(path)
    assert data["tags"] == {"created": "2024-05-01", "at": "2024-05-01T10:00:00Z"} and data["hyperparameters"]["blob"] == "aGVsbG8="
    result = runner.invoke(app, ["submit", str(path), "--dry-run", "--set", "steps=2"])
    assert result.exit_code == 0, result.output


def test_text_that_looks_like_markup_is_printed_as_text(tmp_path, spec_data):
    data = {**spec_data, "name": "job[/x] [bold]y", "tags": {"k": "[/red]"}, "compute": {"instance_type": "ml.g5[/b]"}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "'job[/x] [bold]y' is not a valid SageMaker job name" in result.output
    assert "'ml.g5[/b]' is not a GPU training instance type" in result.output


def test_an_unknown_key_inside_a_list_entry_names_the_known_fields(spec_data):
    with pytest.raises(SpecError) as info:
        validate_spec({**spec_data, "metric_definitions": [{"name": "loss", "regex": "l=(.*)", "bogus": 1}]})
    assert info.value.problems[0].render() == ("metric_definitions.0.bogus: is not a known field. "
                                               "To fix: Known fields here: name, regex.")


@pytest.mark.parametrize("uri", ["\x00", "data\x00", "da\nta", ""])
def test_a_channel_uri_with_a_control_character_or_nothing_is_one_problem(spec_data, uri):
    """Found by the fuzz below: such a path reached the file system (resolve) before any rule ran."""
    with pytest.raises(SpecError) as raised:
        validate_spec({**spec_data, "inputs": {"train": {"uri": uri}}})
    assert raised.value.paths() == ["inputs.train.uri"], str(raised.value)


def test_paths_with_control_characters_in_a_spec_file_are_problems_not_crashes(tmp_path):
    """A spec file's relative paths are resolved against its folder before validation: a NUL there stopped
    os.path with a ValueError, and an empty channel URI became the file's own folder."""
    from smjobs.spec.job import read_spec_data, resolve_file_paths

    path = tmp_path / "job.yaml"
    path.write_text('name: x\nentry_point: train.py\ncompute: {instance_type: ml.g5.xlarge}\nsource_dir: "a\\0b"\n'
                    'inputs: {train: {uri: "da\\0ta"}, test: {uri: ""}}\n')
    with pytest.raises(SpecError) as raised:
        validate_spec(resolve_file_paths(read_spec_data(path), path))
    assert sorted(raised.value.paths()) == ["inputs.test.uri", "inputs.train.uri", "source_dir"], str(raised.value)


def test_service_patterns_are_read_with_java_semantics():
    assert re.fullmatch(java_to_python_regex(r"\d{12}"), "123456789012")
    assert not re.fullmatch(java_to_python_regex(r"\d{12}"), "١٢٣٤٥٦٧٨٩٠١٢")  # Arabic-Indic digits: not Java's \d
    for terminator in ("\n", "\r", "\x85", "\u2028", "\u2029"):  # Java's `.` stops at each; Python's only at \n
        assert not re.fullmatch(java_to_python_regex(r"a.b"), f"a{terminator}b")
    assert re.fullmatch(java_to_python_regex(r"[\S\s]*"), "a\u2028\x85b")  # anything, as in Java
    assert re.fullmatch(java_to_python_regex(r"[\p{L}\p{N}_.-]+"), "héllo_1.x")
    assert not re.fullmatch(java_to_python_regex(r"[\p{L}\p{Z}]+"), "a\x1cb")  # a control character, not a separator


def test_integers_beyond_the_services_java_int_are_caught():
    request = {"TrainingJobName": "j", "RoleArn": "arn:aws:iam::123456789012:role/r",
               "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
               "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
               "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2**31, "VolumeSizeInGB": 30},
               "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    assert [p.path for p in check(request)] == ["CreateTrainingJob.ResourceConfig.InstanceCount"]
    assert "does not fit the service's integer" in check(request)[0].message


# ----- fuzz ---------------------------------------------------------------------------------------------------------
_text = st.text(alphabet=st.sampled_from(string.printable + "[]/é١\u2028\x85\x00"), max_size=30)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), _text)
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(_text, inner, max_size=4)), max_leaves=12)
_PATHS = ["name", "entry_point", "source_dir", "framework_version", "py_version", "region", "output_path",
          "checkpoint_s3_uri", "checkpoint_local_path", "role_arn", "environment", "tags", "hyperparameters",
          "metric_definitions", "inputs", "compute", "compute.instance_type", "compute.instance_count",
          "compute.volume_size_gb", "compute.max_run_s", "compute.use_spot", "compute.max_wait_s", "distribution",
          "distribution.type", "distribution.processes_per_host", "distribution.pp_degree", "security",
          "security.subnets", "security.volume_kms_key", "plan", "plan.max_instances", "plan.micro_batch",
          "plan.model", "bogus", "hyperparameters.steps", "tags.team", "environment.NCCL_DEBUG", "inputs.train",
          "inputs.train.uri", "metric_definitions.0", "metric_definitions.0.regex", "tracking", "tracking.mlflow",
          "tracking.mlflow.tracking_uri", "tracking.mlflow.tracking_server_arn", "tracking.mlflow.run_name"]
_PLAUSIBLE = {  # values near the valid ones, so that accepted specs are common enough to test what they send
    "name": st.from_regex(r"[a-z0-9][a-z0-9-]{0,50}", fullmatch=True),
    "framework_version": st.sampled_from(["2.8.0", "2.2.0", "2.0.0", "1.13.1", "2.4.1", "2.10.0"]),
    "py_version": st.sampled_from(["py312", "py311", "py310", "py39"]),
    "region": st.sampled_from(["us-east-1", "eu-west-1", "ap-south-1", "mars-1"]),
    "output_path": st.sampled_from(["s3://my-bucket/out", "s3://a/b", "s3://UPPER/x", "s3://bucket/k\u2028ey"]),
    "checkpoint_s3_uri": st.sampled_from(["s3://ckpt-bucket/x", "s3://b/c\x85d"]),
    "compute.instance_type": st.sampled_from(["ml.g5.xlarge", "ml.g5.12xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge",
                                              "ml.g6e.48xlarge", "ml.p3.2xlarge", "ml.m5.xlarge", "auto"]),
    "compute.instance_count": st.one_of(st.integers(1, 4), st.integers(min_value=0, max_value=2**32)),
    "compute.volume_size_gb": st.one_of(st.integers(1, 500), st.integers(min_value=0, max_value=2**32)),
    "compute.max_run_s": st.one_of(st.integers(1, 10**6), st.integers(min_value=0, max_value=2**32)),
    "compute.max_wait_s": st.integers(min_value=0, max_value=2**32),
    "distribution": st.sampled_from([{"type": t} for t in ("ddp", "fsdp", "smddp", "pipeline", "naive_mp", "smp_v2", "smp_v1")]),
    "distribution.processes_per_host": st.integers(min_value=0, max_value=16),
    "hyperparameters.steps": st.integers(min_value=-5, max_value=2**40),
    "tags.team": _text,
    "environment.NCCL_DEBUG": _text,
    "metric_definitions": st.lists(st.fixed_dictionaries({"name": _text, "regex": _text}), max_size=2),
    "plan.max_instances": st.integers(min_value=-1, max_value=10**12),
    "tracking": st.sampled_from([
        {"mlflow": {"tracking_server_arn": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/team"}},
        {"mlflow": {"tracking_server_arn": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/a\u2028b"}},
        {"mlflow": {"tracking_uri": "https://mlflow.example.com", "experiment": "exp", "run_name": "r-1"}},
        {"mlflow": {"tracking_uri": "http://x", "tracking_server_arn": "arn:aws:sagemaker:us-east-1:1:mlflow-app/a"}},
        {"mlflow": {"experiment": "a" * 300}}, {"mlflow": {}}]),
}
_change = st.sampled_from(_PATHS).flatmap(
    lambda p: st.tuples(st.just(p), st.one_of(_PLAUSIBLE[p], _PLAUSIBLE[p], _value) if p in _PLAUSIBLE else _value))
_SHAPE = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        if part.isdigit() and isinstance(node, list) and node:
            node = node[min(int(part), len(node) - 1)]
            continue
        child = node.get(part) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            child = {}
            if isinstance(node, dict):
                node[part] = child
        node = child
    if isinstance(node, dict):
        node[last] = value


_plausible_change = st.sampled_from(sorted(_PLAUSIBLE)).flatmap(lambda p: st.tuples(st.just(p), _PLAUSIBLE[p]))


def _accepted_or_refused(data: dict) -> bool:
    """validate_spec either accepts (and then the request passes botocore's validator and the service's rules read
    as Java reads them) or raises SpecError; nothing else. Returns whether it accepted."""
    try:
        spec = validate_spec(copy.deepcopy(data))
    except SpecError:
        return False
    params = copy.deepcopy(build_request(spec).create_training_job)
    params["RoleArn"] = "arn:aws:iam::123456789012:role/smjobs"
    assert not ParamValidator().validate(params, _SHAPE).has_errors()
    assert check(params) == []
    return True


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(changes=st.lists(_change, max_size=4))
def test_fuzz_any_spec_is_accepted_validly_or_refused_with_spec_error(spec_data_factory, changes):
    data = spec_data_factory()
    for path, value in changes:
        _set(data, path, value)
    _accepted_or_refused(data)


ACCEPTED: list[bool] = []


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(changes=st.lists(_plausible_change, min_size=1, max_size=3))
def test_fuzz_near_valid_specs_send_only_what_the_service_accepts(spec_data_factory, changes):
    data = spec_data_factory()
    for path, value in changes:
        _set(data, path, value)
    ACCEPTED.append(_accepted_or_refused(data))


def test_the_near_valid_fuzz_accepted_a_good_share():
    """The accepted branch above must really be exercised (runs after it, in file order)."""
    assert len(ACCEPTED) >= 500 and sum(ACCEPTED) >= 100, (len(ACCEPTED), sum(ACCEPTED))


@pytest.fixture
def spec_data_factory(spec_data):
    return lambda: copy.deepcopy(spec_data)


# ----- region from any source, bounds, placement ------------------------------------------------------------
def test_a_region_from_the_environment_is_validated(spec_data, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "mars-1")
    with pytest.raises(SpecError) as raised:
        validate_spec(spec_data)
    assert raised.value.paths() == ["region"] and "'mars-1' (from $AWS_DEFAULT_REGION)" in str(raised.value)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # the SDK's order: AWS_REGION first
    assert validate_spec(spec_data).name == spec_data["name"]
    assert validate_spec({**spec_data, "region": "us-west-2"}).region == "us-west-2"  # the spec wins over the environment


def test_a_region_only_in_the_aws_config_is_validated_as_the_commands_would_use_it(spec_data, monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text("[default]\nregion = mars-1\n[profile work]\nregion = venus-2\n")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    with pytest.raises(SpecError) as raised:
        validate_spec(spec_data)
    assert "'mars-1' (from the AWS config (profile default))" in str(raised.value)
    monkeypatch.setenv("AWS_PROFILE", "work")
    with pytest.raises(SpecError) as raised:
        validate_spec(spec_data)
    assert "'venus-2' (from the AWS config (profile work))" in str(raised.value)
    assert validate_spec({**spec_data, "region": "us-west-2"}).region == "us-west-2"


@pytest.mark.parametrize("path,value", [
    ("plan.max_instances", 10**12), ("plan.micro_batch", 10**9), ("plan.model.layers", 10**9),
    ("compute.instance_count", 10**6), ("compute.volume_size_gb", 10**6), ("distribution.microbatches", 10**9),
])
def test_every_number_has_a_bound(spec_data, path, value):
    data = json.loads(json.dumps(spec_data))
    if path.startswith("distribution."):
        data["distribution"] = {"type": "pipeline", "pp_degree": 2, "dp_degree": 4, "microbatches": value}
    elif path.startswith("plan.model."):
        data["plan"] = {"model": {"layers": value, "hidden": 64, "heads": 4, "seq_len": 32, "vocab": 256}}
    else:
        section, key = path.split(".")
        data.setdefault(section, {})[key] = value
    with pytest.raises(SpecError) as raised:
        validate_spec(data)
    assert path in raised.value.paths()


def test_placement_warnings_name_the_effect(spec_data):
    from smjobs import placement_warnings

    without_efa = validate_spec({**spec_data, "compute": {"instance_type": "ml.g5.2xlarge", "instance_count": 4}})
    (warning,) = placement_warnings(without_efa)
    assert "4 x ml.g5.2xlarge: this type has no EFA" in warning and "TCP" in warning and "To fix" in warning
    assert placement_warnings(validate_spec({**spec_data, "compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 4}})) == []
    hybrid = validate_spec({**spec_data, "compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 4},
                            "distribution": {"type": "fsdp", "sharding": "hybrid_shard", "shard_degree": 16}})
    assert any("shard_degree 16 spans 2 instances" in w for w in placement_warnings(hybrid))
    tp_over_pcie = validate_spec({**spec_data, "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 1},
                                  "distribution": {"type": "pipeline", "pp_degree": 2, "tp_degree": 2, "microbatches": 4}})
    assert any("no NVLink" in w for w in placement_warnings(tp_over_pcie))
