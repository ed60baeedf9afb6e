"""The docs' Studio section (docs/getting-started.md), in an environment shaped like a current Studio kernel: SDK
v3 installed (this module runs where v3 is), the notebook's metadata file present, and the execution role found with boto3 alone (the SDK is
made unimportable while the page's code runs): the user profile's role, else the domain's default."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from smjobs.aws import account

pytestmark = pytest.mark.sdk_v3
README = Path(__file__).resolve().parents[3] / "docs" / "getting-started.md"
ACCOUNT = "123456789012"


def studio_block() -> str:
    section = README.read_text().split("## In SageMaker Studio", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def studio(moto_aws, tmp_path, monkeypatch):
    """A Studio domain and user profile in moto (moto has domains, not user profiles: a fixture serves
    DescribeUserProfile from ``profiles``), and the kernel's metadata file naming them."""
    from moto.sagemaker.responses import SageMakerResponse

    domain_role = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-domain"
    domain = moto_aws.client("sagemaker").create_domain(
        DomainName="team", AuthMode="IAM", DefaultUserSettings={"ExecutionRole": domain_role},
        SubnetIds=["subnet-0a1b2c3d"], VpcId="vpc-0a1b2c3d")["DomainArn"].rsplit("/", 1)[1]
    profiles = {"me": {"ExecutionRole": f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-me"}}

    def describe_user_profile(self):
        name = self._get_param("UserProfileName")
        return json.dumps({"DomainId": self._get_param("DomainId"), "UserProfileName": name,
                           "UserSettings": profiles.get(name, {})})

    monkeypatch.setattr(SageMakerResponse, "describe_user_profile", describe_user_profile, raising=False)
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"DomainId": domain, "UserProfileName": "me", "SpaceName": "me-space",
                                    "ResourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:app/{domain}/me/JupyterLab/default"}))
    monkeypatch.setattr(account, "NOTEBOOK_METADATA_FILE", str(metadata))
    return {"profiles": profiles, "domain_role": domain_role, "metadata": metadata}


def run_readme_block(moto_aws, tmp_path, spec_data, monkeypatch) -> dict:
    """The Studio section's code, as a notebook cell, with the SageMaker SDK unimportable; returns its globals. The
    kernel's AWS session is moto's, whose client records what is sent."""
    from smjobs.aws.context import AwsContext

    monkeypatch.setattr(AwsContext, "create", classmethod(lambda cls, **_: moto_aws))
    for name in [m for m in sys.modules if m == "sagemaker" or m.startswith("sagemaker.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec_data))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(studio_block(), "docs/getting-started.md (In SageMaker Studio)", "exec"), scope)  # noqa: S102
    return scope


def test_the_readmes_studio_code_submits_with_the_user_profiles_role(studio, moto_aws, spec_data, tmp_path, monkeypatch):
    scope = run_readme_block(moto_aws, tmp_path, spec_data, monkeypatch)
    [sent] = moto_aws.sent
    assert sent["RoleArn"] == studio["profiles"]["me"]["ExecutionRole"] == scope["request"].role_arn
    assert sent == scope["request"].create_training_job


def test_a_profile_without_a_role_falls_back_to_the_domains(studio, moto_aws, spec_data, tmp_path, monkeypatch):
    studio["profiles"]["me"] = {}
    scope = run_readme_block(moto_aws, tmp_path, spec_data, monkeypatch)
    assert moto_aws.sent[0]["RoleArn"] == studio["domain_role"] == scope["request"].role_arn
    assert account.notebook_role(moto_aws) == studio["domain_role"]


def test_the_sdk_is_the_environment_s_own_and_untouched():
    """This module runs where SDK v3 is installed (conftest deselects it elsewhere), as in a Studio kernel."""
    from smjobs.aws.sdk import sdk_major, sdk_version

    assert sdk_major() == 3 and sdk_version().startswith("3.")
