"""``-o json``: every command's document parses and validates against its JSON Schema in docs/schemas/ (which must
be what the models generate), carries what the command computed, and bad input is an ErrorOutput with each
problem's path, message and fix, under the text output's exit code. AWS calls go to in-process moto."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from smjobs.cli import app

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "docs" / "schemas"
runner = CliRunner()


def check(name: str, text: str) -> dict:
    """The document, validated against ``docs/schemas/<name>.schema.json``."""
    document = json.loads(text)
    jsonschema.validate(document, json.loads((SCHEMAS / f"{name}.schema.json").read_text()))
    return document


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "-o", "json"], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def write(tmp_path, data) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_schema_files_are_what_the_models_generate(tmp_path):
    from smjobs.cli.schemas import write_schemas

    written = {path.name: path.read_text() for path in write_schemas(tmp_path)}
    committed = {path.name: path.read_text() for path in SCHEMAS.glob("*.schema.json")}
    assert written == committed, "run `python -m smjobs.cli.schemas docs/schemas` and commit the result"


def test_validate_plan_dry_run_and_instances(tmp_path, spec_data):
    code, text = invoke("validate", write(tmp_path, spec_data))
    assert code == 0, text
    valid = check("validate", text)
    assert (valid["instance_type"], valid["instance_count"], valid["world_size"]) == ("ml.g5.12xlarge", 2, 8)
    assert valid["code_archive"]["files"] >= 1 and valid["entry_point"] == "probe.py"

    code, text = invoke("plan", "auto_gpt_7b")
    assert code == 0, text
    plan = check("plan", text)
    assert plan["choice"] == plan["ranked"][0] and plan["choice"]["instance_type"].startswith("ml.p")
    assert plan["choice"]["memory_gib_per_gpu"] <= plan["choice"]["gpu_memory_gib"]
    assert plan["rejected"] and plan["evaluated"] > 0 and plan["why_nothing"] is None

    code, text = invoke("submit", write(tmp_path, spec_data), "--dry-run", "--region", "eu-west-1")
    assert code == 0, text
    dry = check("submit-dry-run", text)
    assert dry["region"] == "eu-west-1" and dry["create_training_job"]["ResourceConfig"]["InstanceCount"] == 2
    yaml_run = yaml.safe_load(runner.invoke(app, ["submit", write(tmp_path, spec_data), "--dry-run", "--region",
                                                  "eu-west-1", "--job-name", dry["job_name"]]).stdout)
    assert dry["create_training_job"] == yaml_run["create_training_job"]  # the YAML's request, as JSON

    code, text = invoke("instances", "--region", "us-east-1")
    assert code == 0, text
    rows = {row["instance_type"]: row for row in check("instances", text)["instance_types"]}
    assert rows["ml.p4d.24xlarge"]["gpu_count"] == 8 and rows["ml.p4d.24xlarge"]["efa"] is True
    assert rows["ml.g4dn.xlarge"]["interconnect"] is None and "torch_distributed" in rows["ml.p4d.24xlarge"]["libraries"]


def test_bad_input_is_an_error_document_with_each_problems_path_and_fix(tmp_path, spec_data):
    spec_data["compute"]["instance_count"] = 0
    spec_data["compute"]["instance_type"] = "ml.nope"
    for command in (["validate"], ["submit", "--dry-run"]):
        code, text = invoke(command[0], write(tmp_path, spec_data), *command[1:])
        assert code == 2
        error = check("error", text)
        paths = {p["path"]: p for p in error["problems"]}
        assert {"compute.instance_type", "compute.instance_count"} <= set(paths), error
        assert paths["compute.instance_count"]["fix"] and error["ok"] is False
    code, text = invoke("list", "--status", "Sleeping", "--region", "us-east-1")
    assert code == 2 and "Sleeping" in check("error", text)["message"]
    # -o json does not stay on for the next command run in the same process
    assert runner.invoke(app, ["validate", "ddp_mlp"]).stdout.lstrip()[:1] != "{"


def _job(name: str):
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends["123456789012"]["us-east-1"].training_jobs[name]


def test_status_list_cost_and_logs_of_a_submitted_job(moto_aws, tmp_path, spec_data, monkeypatch):
    from smjobs.aws import lifecycle

    monkeypatch.setenv("SMJOBS_STATE_DIR", str(tmp_path / "state"))
    submitted = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--region", "us-east-1", "--job-name", "json-1"])
    assert submitted.exit_code == 0, submitted.output
    job = _job("json-1")
    job.enable_managed_spot_training = True
    job.training_time_in_seconds, job.billable_time_in_seconds = 3600, 900

    code, text = invoke("status", "json-1")
    assert code == 0, text
    status = check("status", text)
    assert status["name"] == "json-1" and status["instances"] == "2 x ml.g5.12xlarge"

    code, text = invoke("list", "--region", "us-east-1")
    assert code == 0, text
    assert [row["name"] for row in check("list", text)["jobs"]] == ["json-1"]

    code, text = invoke("cost", "json-1")
    assert code == 0, text
    cost = check("cost", text)
    assert cost["spot_savings"] == pytest.approx(0.75) and cost["usd"] == pytest.approx(900 / 3600 * 2 * cost["usd_per_hour"])
    assert cost["estimated_usd_at_submit"] is not None

    logs = moto_aws.client("logs")
    logs.create_log_group(logGroupName=lifecycle.LOG_GROUP)
    logs.create_log_stream(logGroupName=lifecycle.LOG_GROUP, logStreamName="json-1/algo-1-1700000000")
    now = int(dt.datetime.now().timestamp() * 1000)
    logs.put_log_events(logGroupName=lifecycle.LOG_GROUP, logStreamName="json-1/algo-1-1700000000", logEvents=[
        {"timestamp": now, "message": "Invoking script"}, {"timestamp": now + 1, "message": "[default3]: step=1 loss=2.0"}])
    code, text = invoke("logs", "json-1")
    assert code == 0, text
    lines = [check("logs", line) for line in text.splitlines()]  # JSON lines, each valid on its own
    assert [(line["rank"], line["message"]) for line in lines] == [(None, "Invoking script"), (3, "step=1 loss=2.0")]
    code, text = invoke("logs", "json-1", "--follow")
    assert code == 0, text
    *_, end = [check("logs", line) for line in text.splitlines()]
    assert end["kind"] == "end" and end["status"] == "Completed"

    code, text = invoke("status", "no-such-job", "--region", "us-east-1")
    assert code == 1 and check("error", text)["message"].startswith("AWS error")

