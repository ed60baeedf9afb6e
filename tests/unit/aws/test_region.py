"""Region and profile as the AWS CLI resolves them: a region set only in ~/.aws/config (or in a named profile's
section) is where submit, its dry run's image, status, list, infra deploy and the Python submit() go. The
endpoint of every call is read from the request botocore sends (its before-call hook), not from moto."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from smjobs import api
from smjobs.aws.context import AwsContext
from smjobs.checks.validate import validate_spec
from smjobs.cli import app

CONFIG = "[default]\nregion = eu-west-1\n\n[profile team]\nregion = ap-southeast-2\n"


def _aws_env(monkeypatch, tmp_path):
    """The region only in the config file; a call log of (service, operation, url) for every client made."""
    config = tmp_path / "aws-config"
    config.write_text(CONFIG)
    credentials = tmp_path / "aws-credentials"  # a named profile takes its keys from here, not the environment
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n"
                           "[team]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("SMJOBS_STATE_DIR", str(tmp_path / "state"))
    calls = []
    real_client = AwsContext.client

    def client(self, name):
        made = name not in self._clients
        found = real_client(self, name)
        if made:
            found.meta.events.register("before-call.*.*", lambda params, model, **_: calls.append(
                (model.service_model.service_name, model.name, params["url"])))
        return found

    monkeypatch.setattr(AwsContext, "client", client)
    return calls


def _regions(calls, service):
    return {url.split("//", 1)[1].split("/", 1)[0] for s, _, url in calls if s == service}


def test_the_cli_goes_where_the_config_file_says(moto_bare, spec_data, tmp_path, monkeypatch):
    calls = _aws_env(monkeypatch, tmp_path)
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data))
    cli = CliRunner()

    dry = cli.invoke(app, ["submit", str(spec_file), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    image = yaml.safe_load(dry.stdout)["create_training_job"]["AlgorithmSpecification"]["TrainingImage"]
    assert ".dkr.ecr.eu-west-1.amazonaws.com/" in image
    team = cli.invoke(app, ["submit", str(spec_file), "--dry-run", "--profile", "team"])
    assert ".dkr.ecr.ap-southeast-2." in yaml.safe_load(team.stdout)["create_training_job"]["AlgorithmSpecification"]["TrainingImage"]
    assert calls == []  # a dry run calls nothing

    deployed = cli.invoke(app, ["infra", "deploy"])
    assert deployed.exit_code == 0 and "in eu-west-1" in deployed.output, deployed.output
    assert _regions(calls, "cloudformation") == {"cloudformation.eu-west-1.amazonaws.com"}
    submitted = cli.invoke(app, ["submit", str(spec_file), "--yes", "--job-name", "where-1"])
    assert submitted.exit_code == 0, submitted.output
    assert "in eu-west-1" in submitted.output  # said with the cost estimate, before anything starts
    assert _regions(calls, "sagemaker") == {"api.sagemaker.eu-west-1.amazonaws.com"}
    uploads = _regions(calls, "s3")  # the code archive, to the bucket's regional endpoint
    assert uploads and all(".s3.eu-west-1.amazonaws.com" in f".{host}" for host in uploads), uploads
    calls.clear()
    assert cli.invoke(app, ["status", "where-1"]).exit_code == 0
    listed = cli.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "eu-west-1" in listed.output
    assert _regions(calls, "sagemaker") == {"api.sagemaker.eu-west-1.amazonaws.com"}
    calls.clear()
    assert cli.invoke(app, ["list", "--profile", "team"]).exit_code == 0
    assert _regions(calls, "sagemaker") == {"api.sagemaker.ap-southeast-2.amazonaws.com"}
    nowhere = cli.invoke(app, ["list", "--profile", "nobody"])
    assert nowhere.exit_code == 2 and "nobody" in nowhere.output and "To fix" in nowhere.output


def test_the_python_submit_goes_where_the_config_file_or_profile_says(moto_bare, spec_data, tmp_path, monkeypatch):
    calls = _aws_env(monkeypatch, tmp_path)
    spec = validate_spec(spec_data)
    api.deploy_infra()
    request = api.submit(spec)
    assert request.region == "eu-west-1" and ".dkr.ecr.eu-west-1." in \
        request.create_training_job["AlgorithmSpecification"]["TrainingImage"]
    # one account set-up serves every region (IAM is global): the role deployed above, a bucket in the other region
    role = moto_bare.client("iam").get_role(RoleName="smjobs-sagemaker-execution")["Role"]["Arn"]
    AwsContext.create(region="ap-southeast-2").client("s3").create_bucket(
        Bucket="team-bucket", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    calls.clear()
    teamed = api.submit(spec, profile="team", role_arn=role, bucket="team-bucket")
    assert teamed.region == "ap-southeast-2"
    assert _regions(calls, "sagemaker") == {"api.sagemaker.ap-southeast-2.amazonaws.com"}
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # the environment beats the config file, as in the AWS CLI
    assert api.aws_context().region == "us-west-2"
    assert api.aws_context(region="eu-central-1").region == "eu-central-1"  # and the flag beats both


REGION_CASES = [  # (environment, --profile): the lookup must give botocore's answer, or fail where botocore does
    ({}, None),
    ({}, "team"),
    ({"AWS_PROFILE": "team"}, None),
    ({"AWS_DEFAULT_PROFILE": "team", "AWS_PROFILE": "default"}, None),  # botocore reads AWS_DEFAULT_PROFILE first
    ({"AWS_PROFILE": "nobody"}, None),
    ({}, "nobody"),
    ({"AWS_DEFAULT_REGION": "us-west-2"}, "team"),
    ({"AWS_DEFAULT_REGION": "us-west-2"}, "nobody"),  # the variable is read before the profile: no error
    ({}, "keys-only"),  # a profile only in the credentials file exists, and has no region
    ({"AWS_CONFIG_FILE": "{tmp}/missing"}, None),
    ({"AWS_CONFIG_FILE": "{tmp}/missing"}, "team"),
]


def test_the_region_lookup_answers_as_botocore_does(tmp_path, monkeypatch):
    import botocore.exceptions
    import botocore.session

    from smjobs.spec import region

    config = tmp_path / "aws-config"
    config.write_text(CONFIG + "\n[profile noregion]\noutput = json\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[keys-only]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    checked = 0
    for env, profile in REGION_CASES:
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        for var, value in env.items():
            monkeypatch.setenv(var, value.format(tmp=tmp_path))
        try:
            expected = botocore.session.Session(profile=profile).get_config_variable("region")
        except botocore.exceptions.ProfileNotFound:
            expected = "ProfileNotFound"
        try:
            found = region.configured_region(profile)
        except region.RegionError as exc:
            assert "To fix:" in str(exc)
            found = "ProfileNotFound"
        assert found == expected, (env, profile)
        checked += expected not in (None, "ProfileNotFound")
    assert checked >= 4  # the cases resolve real regions, not only errors
