"""The smjobs CLI: exit codes, plain messages, dry runs that touch no AWS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from smjobs.cli import app

runner = CliRunner()


def write(tmp_path, data, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_validate_valid_spec(tmp_path, spec_data):
    result = runner.invoke(app, ["validate", write(tmp_path, spec_data)])
    assert result.exit_code == 0, result.output
    assert "unit-ddp: valid" in result.output and "world size 8" in result.output


def test_validate_shipped_example_by_name():
    result = runner.invoke(app, ["validate", "fsdp_gpt_spot"])
    assert result.exit_code == 0, result.output
    assert "fsdp" in result.output


def test_invalid_spec_exits_2_with_every_problem(tmp_path, spec_data):
    spec_data["distribution"] = {"type": "ddp", "process_per_host": 8}
    spec_data["compute"]["instance_type"] = "ml.p3.8xlarge"
    spec_data["name"] = "bad_name"
    result = runner.invoke(app, ["validate", write(tmp_path, spec_data)])
    assert result.exit_code == 2
    assert "did you mean 'processes_per_host'" in result.output
    assert "not a valid SageMaker job name" in result.output
    assert "Traceback" not in result.output


def test_unreadable_spec_exits_2(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "cannot read the spec" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_dry_run_prints_the_request_as_yaml_without_aws(tmp_path, spec_data):
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--dry-run", "--region", "eu-west-1",
                                 "--job-name", "fixed-name"])
    assert result.exit_code == 0, result.output
    request = yaml.safe_load(result.stdout)  # notices go to stderr: stdout stays plain YAML
    assert "availability was not checked" in result.stderr  # no eu-west-1 list in the shipped catalog
    ctj = request["create_training_job"]
    assert ctj["TrainingJobName"] == "fixed-name"
    assert ctj["AlgorithmSpecification"]["TrainingImage"].startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/")
    assert ctj["HyperParameters"]["sagemaker_region"] == '"eu-west-1"'
    assert request["role_arn"] == "<role>" and request["world_size"] == 8


def test_submit_without_credentials_says_so(tmp_path, spec_data):
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--region", "us-east-1"])
    assert result.exit_code == 2
    assert "No AWS credentials found" in result.output and "--endpoint-url" in result.output
    assert "Traceback" not in result.output


def test_submit_invalid_spec_touches_no_aws(tmp_path, spec_data, moto_bare):
    spec_data["compute"]["instance_count"] = 0
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--region", "us-east-1"])
    assert result.exit_code == 2
    assert moto_bare.client("s3").list_buckets()["Buckets"] == []
    assert moto_bare.client("iam").list_roles()["Roles"] == []


def test_submit_status_and_logs_in_process_moto(tmp_path, spec_data, moto_aws):
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--region", "us-east-1", "--job-name", "cli-job"])
    assert result.exit_code == 0, result.output
    assert "submitted cli-job" in result.output
    assert moto_aws.client("sagemaker").describe_training_job(TrainingJobName="cli-job")["ResourceConfig"]["InstanceCount"] == 2
    status = runner.invoke(app, ["status", "cli-job", "--region", "us-east-1"])
    assert status.exit_code == 0 and "ml.g5.12xlarge" in status.output
    logs = runner.invoke(app, ["logs", "cli-job", "--region", "us-east-1"])
    assert logs.exit_code == 0 and "no log streams" in logs.output
    missing = runner.invoke(app, ["status", "no-such-job", "--region", "us-east-1"])
    assert missing.exit_code == 1 and "AWS error" in missing.output


def test_role_option_is_validated(tmp_path, spec_data):
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--dry-run", "--role", "not-an-arn"])
    assert result.exit_code == 2 and "role_arn" in result.output


def test_real_process_exit_code_and_no_traceback(tmp_path, spec_data):
    spec_data["compute"]["instance_type"] = "ml.c5.xlarge"
    done = subprocess.run([sys.executable, "-m", "smjobs.cli", "validate", write(tmp_path, spec_data)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "is a CPU instance" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_run_local_refuses_bad_input_before_any_process(tmp_path, spec_data):
    work = tmp_path / "work"
    cases = [
        ({**spec_data, "inputs": {"train": {"uri": str(tmp_path / "missing")}}}, "does not exist"),
        ({**spec_data, "entry_point": "nope.py"}, "does not exist"),
        ({**{k: v for k, v in spec_data.items() if k != "source_dir"}, "entry_point": "train.py", "hyperparameters": {"stpes": 3}},
         "does not accept --stpes"),
        ({**spec_data, "inputs": {"train": {"uri": "s3://data-bucket/train"}}}, "a local run reads channels from local"),
    ]
    for i, (data, fragment) in enumerate(cases):
        result = runner.invoke(app, ["run", write(tmp_path, data, f"s{i}.yaml"), "--local", "--work-dir", str(work)])
        assert result.exit_code == 2, result.output
        assert fragment in result.output
        assert not work.exists(), "no process may start and no tree be laid out"


def test_more_processes_than_cpus_is_said_before_the_run(tmp_path, spec_data, monkeypatch):
    import os

    from smjobs.cli import local as cli_local

    class Done:
        shell_exit_code = 0

    started = []
    monkeypatch.setattr(cli_local, "run_with_progress", lambda *a, **k: started.append(a) or Done())
    monkeypatch.setattr(cli_local, "report", lambda result: None)
    cpus = os.cpu_count() or 1
    spec = write(tmp_path, spec_data)
    many = runner.invoke(app, ["run", spec, "--processes", str(cpus + 1), "--work-dir", str(tmp_path / "w1")])
    assert many.exit_code == 0, many.output
    assert f"{cpus + 1} processes share this machine's {cpus} CPUs" in many.output and len(started) == 1
    fewer = runner.invoke(app, ["run", spec, "--processes", "1", "--work-dir", str(tmp_path / "w2")])
    assert fewer.exit_code == 0 and "CPUs" not in fewer.output


def test_set_overrides_reach_the_spec(tmp_path, spec_data):
    result = runner.invoke(app, ["submit", write(tmp_path, spec_data), "--dry-run", "--job-name", "j",
                                 "--set", "steps=7", "--set", "layers=[1,2]", "--set", "lr=1e-3",
                                 "--set", "compute.instance_count=1"])
    assert result.exit_code == 0, result.output
    request = yaml.safe_load(result.stdout)
    hps = request["create_training_job"]["HyperParameters"]
    assert (hps["steps"], hps["layers"], hps["lr"]) == ("7", '"[1,2]"', "0.001")
    assert request["world_size"] == 4
    bad = runner.invoke(app, ["validate", write(tmp_path, spec_data), "--set", "novalue"])
    assert bad.exit_code == 2 and "expected key=value" in bad.output


def _commands(command, path=()):
    yield path, command
    if hasattr(command, "commands"):  # a group (typer's own click types, so no isinstance)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_option_has_help_and_flags_take_no_value_label():
    import typer.main

    root = typer.main.get_command(app)
    seen = 0
    for path, command in _commands(root):
        for param in command.params:
            if param.param_type_name == "option":
                assert (param.help or "").strip(), f"smjobs {' '.join(path)} {param.opts[0]} has no help"
                seen += 1
        shown = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert shown.exit_code == 0, (path, shown.output)
        for placeholder in ("<bool>", "<str>", "<int", "<list", "<path>", "{SPEC}", "{JOB}"):  # typer's, Python-like
            assert placeholder not in shown.output, (path, placeholder, shown.output)
    assert seen > 60
    submit = runner.invoke(app, ["submit", "--help"], terminal_width=200).output
    assert "submit [OPTIONS] SPEC" in submit  # an argument by its name, as click and man pages write it
    assert "--region" in submit and "REGION" in submit  # a valued option shows its value's name


def test_version_and_completion():
    from importlib.metadata import version

    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.output.strip() == f"smjobs {version('smjobs')}"
    # typer detects the shell from the process tree (make runs recipes under sh, which it does not support): ask
    # from bash, as a user's terminal would ("; exit $?" keeps bash as the parent instead of exec-ing the command)
    smjobs = Path(sys.executable).with_name("smjobs")
    completion = subprocess.run(["bash", "-c", f"'{smjobs}' --show-completion; exit $?"], capture_output=True, text=True,
                                timeout=120)
    assert completion.returncode == 0 and "_SMJOBS_COMPLETE=complete_bash" in completion.stdout, completion.stderr


def test_run_is_local_by_default_and_accepts_local(tmp_path, spec_data):
    for extra in ([], ["--local"]):  # an invalid spec stops before anything runs, either way the same command
        spec_data["compute"]["instance_count"] = 0
        result = runner.invoke(app, ["run", write(tmp_path, spec_data), *extra])
        assert result.exit_code == 2 and "compute.instance_count" in result.output
        assert "only local runs exist" not in result.output


def test_a_named_command_is_built_alone_and_behaves_as_in_the_whole_app(tmp_path, spec_data):
    from smjobs.cli import one_command

    spec = write(tmp_path, spec_data)
    for args in (["validate", spec], ["validate", "--help"], ["prices", "--help"], ["validate"]):
        narrowed = one_command(args)
        assert narrowed is not app
        assert len(narrowed.registered_commands) + len(narrowed.registered_groups) == 1
        alone, whole = runner.invoke(narrowed, args), runner.invoke(app, args)
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
    # the whole app where no command is named, or a name is misspelt (its error suggests the near names)
    for args in ([], ["--help"], ["--version"], ["validat", spec]):
        assert one_command(args) is app
    assert len(app.registered_commands) > 10


def test_help_and_validate_import_nothing_they_do_not_use():
    """`smjobs --help` and `smjobs validate` of the shipped example: no torch, AWS SDK, SageMaker SDK or planner
    (the example names its instance type), no local-run wing, and for a piped validate no rich table. The first validate reads botocore's service
    model once into smjobs' cache folder; the runs after it read the cache."""
    probe = ("import sys\nfrom smjobs.cli import main\nsys.argv = ['smjobs', *sys.argv[1:]]\ntry:\n    main()\n"
             "except SystemExit:\n    pass\nprint('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'boto3', 'botocore', 'sagemaker') or m.startswith(('smjobs.planner', "
             "'smjobs.local'))))\nprint('TABLE', 'rich.table' in sys.modules)")
    first = subprocess.run([sys.executable, "-m", "smjobs", "validate", "ddp_mlp"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    for args in (["--help"], ["validate", "ddp_mlp"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        loaded = eval(done.stdout.rsplit("LOADED", 1)[1].split("TABLE")[0])  # noqa: S307  (our own printed list)
        assert loaded == [], (args, loaded)
        if args[0] == "validate":  # piped: the key/value lines, without rich's table machinery (0.04 s of imports)
            assert done.stdout.rsplit("TABLE", 1)[1].strip() == "False"
        assert ("ddp-mlp: valid" if args[0] == "validate" else "Usage: smjobs") in done.stdout
