"""A job's life after submit, against in-process moto: quotas before submit, stop, list by tag, wait, follow the
logs of every host, cost with spot savings, the region remembered, the estimate confirmed, telemetry off."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from typer.testing import CliRunner

from smjobs.aws import job_store, lifecycle, quotas
from smjobs.cli import app

runner = CliRunner()
QUOTAS = {  # name -> (code, default, applied)
    "ml.g5.12xlarge for training job usage": ("L-G512", 0.0, 4.0),
    "ml.g5.12xlarge for spot training job usage": ("L-G512S", 0.0, None),
    "ml.p4d.24xlarge for training job usage": ("L-P4D", 0.0, None),
}


@pytest.fixture
def sagemaker_quotas(monkeypatch):
    """moto's Service Quotas knows only VPC's; serve SageMaker's instance quotas through the same API."""
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend

    def entry(name, code, value):
        return {"QuotaName": name, "QuotaCode": code, "Value": value, "ServiceCode": "sagemaker",
                "ServiceName": "Amazon SageMaker", "Adjustable": True, "GlobalQuota": False, "Unit": "None"}

    def defaults(self, service_code):
        if service_code != "sagemaker":
            raise NoSuchResource
        return [entry(name, code, default) for name, (code, default, _) in QUOTAS.items()]

    def applied(self, service_code, quota_code):
        for name, (code, _, value) in QUOTAS.items():
            if code == quota_code and value is not None:
                return entry(name, code, value)
        raise NoSuchResource

    monkeypatch.setattr(ServiceQuotasBackend, "list_aws_default_service_quotas", defaults)
    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", applied)


@pytest.fixture
def stoppable(monkeypatch):
    """moto has no StopTrainingJob: give it one that does what SageMaker does to a job in progress."""
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse

    def stop_training_job(self):
        job = sagemaker_backends[self.current_account][self.region].training_jobs[self._get_param("TrainingJobName")]
        job.training_job_status, job.secondary_status = "Stopping", "Stopping"
        return "{}"

    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)


def _job(name: str):
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends["123456789012"]["us-east-1"].training_jobs[name]


def _write(tmp_path, data) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _submit(tmp_path, spec_data, name, *extra):
    return runner.invoke(app, ["submit", _write(tmp_path, spec_data), "--region", "us-east-1", "--job-name", name, *extra])


def test_quota_below_need_refuses_with_name_value_and_how_to_raise(moto_aws, sagemaker_quotas, tmp_path, spec_data):
    spec_data["compute"]["instance_count"] = 5  # applied quota is 4
    result = _submit(tmp_path, spec_data, "too-many")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "'ml.g5.12xlarge for training job usage' (L-G512) in us-east-1 is 4" in text
    assert "request-service-quota-increase --service-code sagemaker --quota-code L-G512 --desired-value 5" in text
    assert moto_aws.sent == []
    assert _submit(tmp_path, {**spec_data, "compute": {**spec_data["compute"], "instance_count": 4}}, "fits").exit_code == 0


def test_spot_reads_the_spot_quota_and_running_jobs_count(moto_aws, sagemaker_quotas, spec_data):
    from smjobs.api import submit
    from smjobs.checks.validate import validate_spec

    report = quotas.check(moto_aws, "ml.g5.12xlarge", 1, usage="spot")
    assert report.problems and "'ml.g5.12xlarge for spot training job usage' (L-G512S) in us-east-1 is 0" in report.problems[0].message
    submit(validate_spec(spec_data), aws=moto_aws, job_name="running")  # 2 x ml.g5.12xlarge
    _job("running").training_job_status = "InProgress"
    report = quotas.check(moto_aws, "ml.g5.12xlarge", 3)
    assert "running jobs already hold 2" in report.problems[0].message
    assert quotas.check(moto_aws, "ml.g5.12xlarge", 2).problems == []


def test_unreadable_or_unknown_quota_is_said_and_submission_goes_on(moto_aws, tmp_path, spec_data):
    report = quotas.check(moto_aws, "ml.g5.12xlarge", 2)
    assert report.problems == [] and "could not read the Service Quota" in report.notices[0]
    result = _submit(tmp_path, spec_data, "no-quotas")
    assert result.exit_code == 0 and "could not read the Service Quota" in " ".join(result.output.split())


def test_stop_list_cost_and_the_remembered_region(moto_aws, stoppable, tmp_path, spec_data, monkeypatch):
    monkeypatch.setenv("SMJOBS_STATE_DIR", str(tmp_path / "state"))
    assert _submit(tmp_path, spec_data, "life-1").exit_code == 0
    assert _submit(tmp_path, {**spec_data, "name": "other"}, "life-2").exit_code == 0
    moto_aws.client("sagemaker").create_training_job(  # a job smjobs did not submit: not listed
        TrainingJobName="foreign", AlgorithmSpecification={"TrainingImage": "x", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/r", OutputDataConfig={"S3OutputPath": "s3://b/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    assert job_store.recall("life-1").region == "us-east-1"
    _job("life-1").training_job_status = "InProgress"
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # from here on, only the remembered region says where the job is
    stopped = runner.invoke(app, ["stop", "life-1"])
    assert stopped.exit_code == 0 and "stopping life-1 (it was InProgress)" in stopped.output
    assert _job("life-1").training_job_status == "Stopping"
    again = runner.invoke(app, ["stop", "life-2"])
    assert "life-2 is Completed: nothing to stop" in again.output
    listed = runner.invoke(app, ["list", "--region", "us-east-1"])
    assert "life-1" in listed.output and "life-2" in listed.output and "foreign" not in listed.output
    only = runner.invoke(app, ["list", "--region", "us-east-1", "--status", "Stopping"])
    assert "life-1" in only.output and "life-2" not in only.output
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    assert "no jobs match" in runner.invoke(app, ["list", "--region", "us-east-1", "--since", future]).output
    assert runner.invoke(app, ["list", "--region", "us-east-1", "--since", "yesterday"]).exit_code == 2
    job = _job("life-2")
    job.enable_managed_spot_training = True
    job.training_time_in_seconds, job.billable_time_in_seconds = 3600, 1200
    cost = runner.invoke(app, ["cost", "life-2"])
    assert cost.exit_code == 0, cost.output
    text = " ".join(cost.output.split())
    priced = lifecycle.cost(moto_aws, "life-2")
    assert priced.usd == pytest.approx(1200 / 3600 * 2 * priced.usd_per_hour)
    assert priced.spot_savings == pytest.approx(2 / 3)
    assert f"${priced.usd:,.2f} = 1,200 s / 3600 x 2" in text, text
    assert "spot savings │ 67%" in text and "estimated at submit" in text


def test_status_without_a_region_says_how_to_give_one(moto_aws, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = runner.invoke(app, ["status", "never-submitted-here"])
    assert result.exit_code == 2 and "pass --region" in result.output


def test_wait_and_follow_print_every_host_until_the_job_ends(moto_aws, spec_data):
    from smjobs.api import submit
    from smjobs.checks.validate import validate_spec

    submit(validate_spec(spec_data), aws=moto_aws, job_name="follow-1")
    _job("follow-1").training_job_status = "InProgress"
    logs = moto_aws.client("logs")
    logs.create_log_group(logGroupName=lifecycle.LOG_GROUP)
    now = int(dt.datetime.now().timestamp() * 1000)

    def put(host, message):
        stream = f"follow-1/{host}"
        if not logs.describe_log_streams(logGroupName=lifecycle.LOG_GROUP, logStreamNamePrefix=stream)["logStreams"]:
            logs.create_log_stream(logGroupName=lifecycle.LOG_GROUP, logStreamName=stream)
        logs.put_log_events(logGroupName=lifecycle.LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now, "message": message}])

    put("algo-1-1700000000", "[default0]: step=1 loss=2.0")
    polls = []

    def sleep(_):  # between polls: a second host starts writing, then the job ends
        polls.append(1)
        if len(polls) == 1:
            put("algo-2-1700000000", "[default8]: step=1 loss=2.0")
        else:
            _job("follow-1").training_job_status = "Completed"

    lines = list(lifecycle.log_lines(moto_aws, "follow-1", follow=True, poll_s=0, sleep=sleep))
    assert lines == ["[algo-1-1700000000 rank 0] step=1 loss=2.0", "[algo-2-1700000000 rank 8] step=1 loss=2.0"]
    assert lifecycle.labelled("algo-1", "[1,mpirank:3,algo-1]<stdout>:step=2") == "[algo-1 rank 3] step=2"
    assert lifecycle.labelled("algo-1", "Invoking script with the following command:") == (
        "[algo-1] Invoking script with the following command:")
    seen = []
    _job("follow-1").training_job_status = "InProgress"
    states = iter(["InProgress", "Completed"])
    final = lifecycle.wait(moto_aws, "follow-1", poll_s=0, on_change=lambda j: seen.append(j["TrainingJobStatus"]),
                           sleep=lambda _: setattr(_job("follow-1"), "training_job_status", next(states)))
    assert final["TrainingJobStatus"] == "Completed" and seen == ["InProgress", "Completed"]
    printed = runner.invoke(app, ["logs", "follow-1", "--follow", "--region", "us-east-1"])
    assert printed.exit_code == 0 and "[algo-2-1700000000 rank 8] step=1" in printed.output
    assert "follow-1: Completed" in printed.output


def test_submit_wait_exits_with_the_jobs_outcome(moto_aws, tmp_path, spec_data):
    done = _submit(tmp_path, spec_data, "waited", "--wait")
    assert done.exit_code == 0 and "waited: Completed" in done.output
    assert "estimated cost: $" in done.output


def test_submit_asks_before_spending_in_a_terminal(moto_aws, tmp_path, spec_data, monkeypatch):
    import smjobs.cli.jobs as cli_jobs

    monkeypatch.setattr(cli_jobs, "_interactive", lambda: True)
    jobs = moto_aws.client("sagemaker").list_training_jobs
    declined = runner.invoke(app, ["submit", _write(tmp_path, spec_data), "--region", "us-east-1"], input="n\n")
    assert declined.exit_code == 1 and "Start this job?" in declined.output
    assert jobs()["TrainingJobSummaries"] == [] and "not submitted" in declined.output
    accepted = runner.invoke(app, ["submit", _write(tmp_path, spec_data), "--region", "us-east-1"], input="y\n")
    assert accepted.exit_code == 0 and len(jobs()["TrainingJobSummaries"]) == 1
    skipped = runner.invoke(app, ["submit", _write(tmp_path, spec_data), "--region", "us-east-1", "--yes",
                                  "--job-name", "no-question"])
    assert skipped.exit_code == 0 and "Start this job?" not in skipped.output
    assert len(jobs()["TrainingJobSummaries"]) == 2


def test_the_estimate_is_the_planners_for_a_sized_model_else_the_max_run_bound(spec_data):
    from smjobs import catalog
    from smjobs.checks.validate import validate_spec
    from smjobs.planner.estimate import estimate

    bound = estimate(validate_spec(spec_data), "us-east-1")
    price = catalog.prices().price("ml.g5.12xlarge", "us-east-1").usd_per_hour
    assert bound.usd == pytest.approx(price * 2 * validate_spec(spec_data).compute.max_run_s / 3600)
    assert "at most" in bound.basis
    sized = {**spec_data, "hyperparameters": {"model": "gpt", "n_layers": 2, "d_model": 64, "n_heads": 4, "seq_len": 32,
                                               "vocab_size": 100, "steps": 10, "global_batch_size": 8}}
    planned = estimate(validate_spec(sized), "us-east-1")
    assert "planner estimate for 10 steps" in planned.basis and planned.usd < bound.usd


def test_the_python_api_checks_quotas_too(moto_aws, sagemaker_quotas, spec_data):
    from smjobs.api import submit
    from smjobs.checks.validate import validate_spec
    from smjobs.errors import SpecError

    with pytest.raises(SpecError) as refused:
        submit(validate_spec({**spec_data, "compute": {**spec_data["compute"], "instance_count": 5}}), aws=moto_aws)
    assert refused.value.paths() == ["compute.instance_count"] and moto_aws.sent == []
    assert submit(validate_spec(spec_data), aws=moto_aws).job_name  # 2 of 4: goes


def test_an_unreadable_quota_is_a_warning_in_python(moto_aws, spec_data):
    from smjobs.api import submit
    from smjobs.checks.validate import validate_spec

    with pytest.warns(UserWarning, match="could not read the Service Quota"):
        submit(validate_spec(spec_data), aws=moto_aws)
    assert len(moto_aws.sent) == 1
