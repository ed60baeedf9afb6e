"""The service-model net catches what botocore's own client-side validation lets through."""

from __future__ import annotations

import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from smjobs.checks.service_model import check, java_to_python_regex

MINIMAL = {
    "TrainingJobName": "job-1",
    "RoleArn": "arn:aws:iam::123456789012:role/r",
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
    "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
    "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}


def botocore_accepts(params) -> bool:
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    return not ParamValidator().validate(params, shape).has_errors()


def test_minimal_request_is_clean():
    assert check(MINIMAL) == []


@pytest.mark.parametrize("patch,fragment", [
    ({"ResourceConfig": {"InstanceType": "ml.g5.huge", "InstanceCount": 1, "VolumeSizeInGB": 30}}, "not one of the"),
    ({"TrainingJobName": "bad_name"}, "does not match the service pattern"),
    ({"TrainingJobName": "a" * 64}, "at most 63"),
    ({"HyperParameters": {"k": "v" * 2501}}, "at most 2500"),
    ({"HyperParameters": {f"k{i}": "v" for i in range(101)}}, "at most 100"),
    ({"Tags": [{"Key": "team", "Value": "a#b"}]}, "does not match"),
    ({"AlgorithmSpecification": {"TrainingInputMode": "Stream", "TrainingImage": "img"}}, "not one of the"),
])
def test_catches_what_botocore_skips(patch, fragment):
    params = {**MINIMAL, **patch}
    assert botocore_accepts(params), "botocore itself would catch this one"
    problems = check(params)
    assert any(fragment in p.message for p in problems), problems


def test_reports_unknown_members_and_missing_required():
    problems = check({"TrainingJobName": "j", "Bogus": 1})
    paths = {p.path for p in problems}
    assert {"CreateTrainingJob.Bogus", "CreateTrainingJob.RoleArn", "CreateTrainingJob.OutputDataConfig"} <= paths


@pytest.mark.parametrize("text,ok", [("team name_1:/=+-@", True), ("ünïcode 名前", True), ("a#b", False), ("x$", False)])
def test_unicode_class_translation(text, ok):
    pattern = re.compile(java_to_python_regex(r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"))
    assert bool(pattern.fullmatch(text)) is ok


def test_the_shapes_come_from_botocore_then_from_the_cache_until_the_model_file_changes(tmp_path, monkeypatch):
    from smjobs.checks import service_model

    monkeypatch.setenv("SMJOBS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    loads = []
    real = botocore.session.Session.get_component

    def counting(self, name):
        if name == "data_loader":
            loads.append(name)
        return real(self, name)

    monkeypatch.setattr(botocore.session.Session, "get_component", counting)
    cached = tmp_path / "service-models" / "sagemaker-CreateTrainingJob.json"
    for _ in range(2):
        service_model._operation_input.cache_clear()
        shape = service_model._operation_input("sagemaker", "CreateTrainingJob")
    assert loads == ["data_loader"] and cached.is_file()  # botocore once, the cache the second time
    # the cached shapes are botocore's: every member, required list, limit and enum of the operation's input
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
    seen, todo = set(), [(shape, model.input_shape)]
    while todo:
        ours, theirs = todo.pop()
        if theirs.name in seen:
            continue
        seen.add(theirs.name)
        assert (ours.name, ours.type_name, list(ours.required_members), ours.enum or []) == (
            theirs.name, theirs.type_name, list(getattr(theirs, "required_members", [])), getattr(theirs, "enum", []) or [])
        assert {k: ours.metadata.get(k) for k in ("min", "max", "pattern")} == {
            k: theirs.metadata.get(k) for k in ("min", "max", "pattern")}
        if theirs.type_name == "structure":
            assert list(ours.members) == list(theirs.members)
            todo += [(ours.members[n], theirs.members[n]) for n in theirs.members]
        elif theirs.type_name == "list":
            todo.append((ours.member, theirs.member))
        elif theirs.type_name == "map":
            todo += [(ours.key, theirs.key), (ours.value, theirs.value)]
    assert len(seen) > 50
    loads.clear()
    # another model file (a botocore upgrade): read from botocore again; a model botocore reads from elsewhere
    # (AWS_DATA_PATH) is never cached
    monkeypatch.setattr(service_model, "_bundled_model_key", lambda service: "another botocore")
    service_model._operation_input.cache_clear()
    service_model._operation_input("sagemaker", "CreateTrainingJob")
    assert loads == ["data_loader"]
    monkeypatch.undo()
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "models"))
    assert service_model._bundled_model_key("sagemaker") is None
    service_model._operation_input.cache_clear()
