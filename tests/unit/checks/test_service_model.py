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
