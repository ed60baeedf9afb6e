"""SDK v3's ModelTrainer, built from smjobs' request (``smjobs.to_model_trainer``): the CreateTrainingJob it
sends, captured from botocore, is smjobs' own request but for the differences v3 makes inherently, each listed
and asserted here; the script gets the same arguments; SMDDP and multi-instance SMP v1 are refused, with the
reason. These run where SDK v3 is installed; conftest deselects them elsewhere."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import tarfile

import pytest

from smjobs import api
from smjobs.aws import sdk, sdk_v3
from smjobs.aws import submit as sagemaker_edge
from smjobs.checks.validate import validate_spec
from smjobs.request import source
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR, example_path, read_spec_data

pytestmark = pytest.mark.sdk_v3

DRIVERS = "/opt/ml/input/data/sm_drivers"
V3_ENTRYPOINT = ["/bin/bash"]
V3_ARGUMENTS = ["-c", f"chmod +x {DRIVERS}/sm_train.sh && {DRIVERS}/sm_train.sh"]


@pytest.fixture
def v3_sent(moto_aws):
    """CreateTrainingJob as sent by the clients made from the session from now on: v3 makes its own
    (moto_aws.sent has smjobs', from the client made before)."""
    sent = []
    moto_aws.session.events.register(sagemaker_edge.CREATE_TRAINING_JOB_EVENT,
                                     lambda params, **_: sent.append(copy.deepcopy(params)))
    return sent


def resolved(aws, spec, job_name):
    return sagemaker_edge.resolved_request(spec, aws, sagemaker_edge.resolve(spec, aws), job_name=job_name)


def through_smjobs(aws, spec, job_name):
    request = resolved(aws, spec, job_name)
    sagemaker_edge.submit(request, aws)
    return copy.deepcopy(aws.sent[-1]), request


def through_the_trainer(aws, sent, spec, job_name):
    trainer = api.to_model_trainer(spec, aws=aws, job_name=job_name)
    assert not sent  # building it sent nothing
    trainer.train(wait=False, logs=False)
    assert len(sent) == 1
    return sent[-1], resolved(aws, spec, job_name)


def read_s3(aws, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def toolkit_arguments(hyperparameters: dict) -> dict[str, str]:
    """The script's arguments from smjobs' HyperParameters, as the v2 container toolkit makes them:
    sagemaker_* keys left out, each value JSON-decoded, then ``str()`` (a mapping as ``k=v,k2=v2``, None as
    empty)."""
    out = {}
    for key, wire in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        value = json.loads(wire)
        out[key] = (",".join(f"{k}={v}" for k, v in sorted(value.items())) if isinstance(value, dict)
                    else "" if value is None else str(value))
    return out


def v3_arguments(hyperparameters: dict) -> dict[str, str]:
    """The script's arguments from v3's HyperParameters, by v3's own driver code: ``environment.py`` decodes
    each value into SM_HPS (a JSON env var); the launcher's ``hyperparameters_to_cli_args`` makes
    ``--key text``."""
    from sagemaker.train.container_drivers.common.utils import hyperparameters_to_cli_args, safe_deserialize

    sm_hps = json.loads(json.dumps({k: safe_deserialize(v) for k, v in hyperparameters.items()}))
    argv = hyperparameters_to_cli_args(sm_hps)
    assert all(name.startswith("--") for name in argv[::2])
    return {name[2:]: text for name, text in zip(argv[::2], argv[1::2], strict=True)}


def reads_the_same(text: str, other: str) -> bool:
    """The same argument text, or text a JSON-reading argparse type turns into the same value."""
    try:
        return text == other or json.loads(text) == json.loads(other)
    except json.JSONDecodeError:
        return False


def assert_same_job(theirs: dict, ours: dict, request) -> dict:
    """Everything v3 sends is smjobs' request except the differences listed here (each asserted, then
    removed); returns v3's hyperparameters, its job's name and its drivers' S3 prefix."""
    theirs, ours = copy.deepcopy(theirs), copy.deepcopy(ours)
    # v3 names the job itself: the spec's name and a timestamp; smjobs sends the request's job name
    their_name = theirs.pop("TrainingJobName")
    assert ours.pop("TrainingJobName") == request.job_name and their_name != request.job_name
    assert their_name.startswith(f"{sdk_v3.base_job_name(request)}-")
    # v3 runs its bash entrypoint, which runs its driver; smjobs relies on the image's toolkit
    assert theirs["AlgorithmSpecification"].pop("ContainerEntrypoint") == V3_ENTRYPOINT
    assert theirs["AlgorithmSpecification"].pop("ContainerArguments") == V3_ARGUMENTS
    # fields ModelTrainer has none for, and v3's explicit default for one smjobs leaves to the service
    assert ours["AlgorithmSpecification"].pop("EnableSageMakerMetricsTimeSeries") is True
    assert ours.pop("ProfilerConfig") == {"DisableProfiler": True}
    assert theirs["OutputDataConfig"].pop("CompressionType") == "GZIP"
    # channels: the user's are the same; v3 adds `code` (the archive smjobs uploaded) and `sm_drivers`
    their_channels = {c["ChannelName"]: c for c in theirs.pop("InputDataConfig")}
    our_channels = {c["ChannelName"]: c for c in ours.pop("InputDataConfig", [])}
    code = their_channels.pop("code")
    archive = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": request.code_uri,
                                "S3DataDistributionType": "FullyReplicated"}}
    assert code == {"ChannelName": "code", "DataSource": archive, "InputMode": "File"}
    if request.create_training_job.get("EnableNetworkIsolation"):
        assert our_channels.pop("code")["DataSource"] == archive  # smjobs mounts the same archive there
    drivers = their_channels.pop("sm_drivers")["DataSource"]["S3DataSource"]["S3Uri"]
    assert drivers == f"s3://{request.bucket}/{request.job_name}/{their_name}/input/sm_drivers"
    assert their_channels == our_channels == sdk.uploaded_channels(request)
    # hyperparameters: v3 drops every sagemaker_* key; the user's keys give the script the same arguments
    their_hps, our_hps = theirs.pop("HyperParameters"), ours.pop("HyperParameters")
    dropped = {k for k in our_hps if k.startswith("sagemaker_")}
    assert dropped and not any(k.startswith("sagemaker_") for k in their_hps)
    assert set(their_hps) == set(our_hps) - dropped
    ours_argv, theirs_argv = toolkit_arguments(our_hps), v3_arguments(their_hps)
    for key in set(their_hps) - {sdk_v3.MP_PARAMETERS}:
        assert reads_the_same(theirs_argv[key], ours_argv[key]), key
        if not isinstance(json.loads(our_hps[key]), bool | None):
            assert their_hps[key] == our_hps[key], key  # the wire value itself, so SM_HPS is the same too
    if sdk_v3.MP_PARAMETERS in our_hps:  # the same parameters, as JSON (the toolkit: k=v,k2=v2)
        assert json.loads(their_hps[sdk_v3.MP_PARAMETERS]) == json.loads(our_hps[sdk_v3.MP_PARAMETERS])
    # the rest: image, instances, stopping condition, output, checkpoints, networking, spot, environment, tags
    assert theirs == ours
    return {"hyperparameters": their_hps, "job_name": their_name, "drivers": drivers}


def driver_files(aws, drivers_uri: str) -> dict:
    return {name: read_s3(aws, f"{drivers_uri}/{name}").decode()
            for name in ("distributed.json", "sourcecode.json", "sm_train.sh")}


@pytest.mark.parametrize("example", ["ddp_mlp", "fsdp_gpt_spot", "smp_v2_gpt", "pipeline_gpt"])
def test_the_trainer_sends_what_smjobs_sends(moto_aws, v3_sent, example):
    from sagemaker.train.distributed import SMP

    spec = validate_spec(read_spec_data(example_path(example)))
    ours, request = through_smjobs(moto_aws, spec, "same-request")
    assert ours == request.create_training_job
    theirs, request = through_the_trainer(moto_aws, v3_sent, spec, "same-request")
    seen = assert_same_job(theirs, ours, request)
    files = driver_files(moto_aws, seen["drivers"])
    smp = request.estimator["distribution"].get("smdistributed", {}).get("modelparallel")
    unset_smp = dict.fromkeys(SMP.model_fields)  # smjobs' parameters, exactly; v3's other fields unset
    assert json.loads(files["distributed.json"]) == {
        "process_count_per_node": request.processes_per_host,
        "smp": {**unset_smp, **smp["parameters"]} if smp else None}
    assert json.loads(files["sourcecode.json"])["source_dir"] == request.code_uri
    assert json.loads(files["sourcecode.json"])["entry_script"] == request.entry_point
    assert "torchrun_driver.py" in files["sm_train.sh"]
    assert "tar -xzf sourcedir.tar.gz" in files["sm_train.sh"]
    if example == "fsdp_gpt_spot":
        assert theirs["EnableManagedSpotTraining"] is True
        assert theirs["StoppingCondition"] == {"MaxRuntimeInSeconds": 36000, "MaxWaitTimeInSeconds": 72000}
        assert theirs["CheckpointConfig"] == ours["CheckpointConfig"]
        assert [c["ChannelName"] for c in theirs["InputDataConfig"]] == ["train", "code", "sm_drivers"]


def test_local_channel_isolation_vpc_tags_environment_and_preferences_match_too(moto_aws, v3_sent, spec_data,
                                                                                tmp_path):
    (tmp_path / "part-0.pt").write_bytes(b"data")
    spec = validate_spec({
        **spec_data, "environment": {"NCCL_DEBUG": "INFO"}, "tags": {"team": "ml"},
        "hyperparameters": {**spec_data["hyperparameters"], "verbose": True, "layers": [3, 4], "note": "a b"},
        "security": {"network_isolation": True, "encrypt_inter_container_traffic": True,
                     "subnets": ["subnet-0a1b2c3d4e5f67890"], "security_group_ids": ["sg-0a1b2c3d4e5f67890"],
                     "output_kms_key": "alias/out"},
        "inputs": {"train": {"uri": str(tmp_path), "content_type": "application/x-pytorch"}},
        "checkpoint_s3_uri": "s3://my-checkpoints/unit",
        "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2, "instance_preferences": [
            {"instance_type": "ml.g5.12xlarge", "instance_count": 2},
            {"instance_type": "ml.g6e.12xlarge", "instance_count": 2}]}})
    ours, _ = through_smjobs(moto_aws, spec, "iso-1")
    theirs, request = through_the_trainer(moto_aws, v3_sent, spec, "iso-1")
    seen = assert_same_job(theirs, ours, request)
    assert theirs["ResourceConfig"]["InstancePreferences"] == ours["ResourceConfig"]["InstancePreferences"]
    assert "InstanceType" not in theirs["ResourceConfig"] and theirs["EnableNetworkIsolation"] is True
    assert theirs["VpcConfig"] == ours["VpcConfig"]
    assert theirs["EnableInterContainerTrafficEncryption"] is True
    assert {"Key": "team", "Value": "ml"} in theirs["Tags"] and theirs["Environment"]["NCCL_DEBUG"] == "INFO"
    channel = next(c for c in theirs["InputDataConfig"] if c["ChannelName"] == "train")
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{request.bucket}/iso-1/input/train"
    assert channel["ContentType"] == "application/x-pytorch"
    assert read_s3(moto_aws, f"s3://{request.bucket}/iso-1/input/train/part-0.pt") == b"data"
    # the one wire value v3 needs changed: a boolean, sent as the toolkit's text so the argument stays "True"
    assert ours["HyperParameters"]["verbose"] == "true" and seen["hyperparameters"]["verbose"] == '"True"'
    assert v3_arguments(seen["hyperparameters"])["verbose"] == "True"
    assert toolkit_arguments(ours["HyperParameters"])["verbose"] == "True"
    # lists reach the script as the same JSON, re-spaced by v3's driver
    assert toolkit_arguments(ours["HyperParameters"])["layers"] == "[3,4]"
    assert v3_arguments(seen["hyperparameters"])["layers"] == "[3, 4]"


def test_the_bundled_script_reads_the_same_arguments(moto_aws, v3_sent):
    data = read_spec_data(example_path("ddp_mlp"))
    spec = validate_spec({**data, "hyperparameters": {**data["hyperparameters"], "track_memory": True}})
    ours, _ = through_smjobs(moto_aws, spec, "script-1")
    theirs, _ = through_the_trainer(moto_aws, v3_sent, spec, "script-1")
    loader = importlib.util.spec_from_file_location("smjobs_v3_probe_train", ENTRY_POINTS_DIR / "train.py")
    script = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(script)

    def parsed(arguments: dict) -> dict:
        argv = [part for key, text in arguments.items() for part in (f"--{key}", text)]
        return vars(script.parse_args(argv))

    under_the_toolkit = parsed(toolkit_arguments(ours["HyperParameters"]))
    assert under_the_toolkit["track_memory"] is True and under_the_toolkit["hidden_sizes"] == [256, 256]
    assert parsed(v3_arguments(theirs["HyperParameters"])) == under_the_toolkit


def test_smp_v1_runs_under_v3s_mpi_driver_on_one_instance(moto_aws, v3_sent):
    data = read_spec_data(example_path("smp_v1_gpt"))
    distribution = {**data["distribution"], "custom_mpi_options": "-x NCCL_DEBUG=WARN"}
    spec = validate_spec({**data, "distribution": distribution})
    ours, _ = through_smjobs(moto_aws, spec, "smp1")
    theirs, request = through_the_trainer(moto_aws, v3_sent, spec, "smp1")
    assert ours["HyperParameters"]["sagemaker_mpi_enabled"] == "true"
    seen = assert_same_job(theirs, ours, request)
    files = driver_files(moto_aws, seen["drivers"])
    assert json.loads(files["distributed.json"]) == {
        "process_count_per_node": 8,
        "mpi_additional_options": ["-bind-to", "none", "-map-by", "slot", "-x", "NCCL_DEBUG=WARN"]}
    assert "mpi_driver.py" in files["sm_train.sh"]
    # SMP v1 reads SM_HP_MP_PARAMETERS, which v3's environment.py makes from this hyperparameter
    assert json.loads(seen["hyperparameters"]["mp_parameters"]) == {
        "partitions": 2, "microbatches": 4, "pipeline": "interleaved", "optimize": "speed",
        "placement_strategy": "cluster", "ddp": True, "tensor_parallel_degree": 2}


@pytest.mark.parametrize(("example", "change", "reason"), [
    ("smddp_cnn", {}, r"smddprun cannot go right before the script"),
    ("smp_v1_gpt", {"compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 2}},
     r"mpirun -np <processes per node>` over all the hosts.*not 8 on each instance"),
])
def test_what_v3_cannot_launch_is_refused_with_the_reason(moto_aws, v3_sent, example, change, reason):
    spec = validate_spec({**read_spec_data(example_path(example)), **change})
    request = resolved(moto_aws, spec, "refused-1")
    with pytest.raises(sdk_v3.ModelTrainerUnsupported, match=reason):
        sdk_v3.to_model_trainer(request, moto_aws)
    listed = moto_aws.client("s3").list_objects_v2(Bucket=request.bucket, Prefix="refused-1/")
    assert listed["KeyCount"] == 0 and not v3_sent and not moto_aws.sent  # nothing uploaded, nothing sent


def test_on_sdk_v2_it_says_which_function_to_call(monkeypatch, spec_data):
    request = build_request(validate_spec(spec_data), bucket="b", role_arn="arn:aws:iam::1:role/r")
    monkeypatch.setattr(sdk, "sdk_version", lambda: "2.257.7")
    named = r"has sagemaker 2\.257\.7: smjobs\.to_estimator\(spec\)"
    for call in (lambda: sdk_v3.to_model_trainer(request, None),
                 lambda: api.to_model_trainer(validate_spec(spec_data))):
        with pytest.raises(sdk.SdkVersionError, match=named) as err:
            call()
        assert "\n" not in str(err.value)
    monkeypatch.setattr(sdk, "sdk_version", lambda: None)
    with pytest.raises(sdk.SdkVersionError, match="not installed: pip install 'sagemaker>=3.27'"):
        sdk_v3.to_model_trainer(request, None)


def test_building_the_trainer_only_uploads_the_manifests_files(moto_aws, v3_sent, spec_data):
    request = resolved(moto_aws, validate_spec(spec_data), "quiet-1")
    calls = []
    moto_aws.session.events.register("before-call", lambda event_name, **_: calls.append(event_name))
    for client in moto_aws._clients.values():
        client.meta.events.register("before-call", lambda event_name, **_: calls.append(event_name))
    trainer = sdk_v3.to_model_trainer(request, moto_aws)
    assert calls and {name.split(".")[1] for name in calls} == {"s3"}  # no SageMaker, no IAM: uploads only
    assert not v3_sent and not moto_aws.sent
    with tarfile.open(fileobj=io.BytesIO(read_s3(moto_aws, request.code_uri))) as archive:
        assert sorted(archive.getnames()) == sorted(source.manifest_for(request).paths())
    assert trainer.source_code.source_dir == request.code_uri


@pytest.mark.parametrize(("hyperparameters", "reason"), [
    ({"n": 3}, r"'n' \(one character: the toolkit passes -n, v3's driver --n\)"),
    ({"note": "it's"}, r"'note' \(its value has a '"),
])
def test_hyperparameters_v3_would_pass_differently_are_refused(moto_aws, spec_data, hyperparameters, reason):
    request = resolved(moto_aws, validate_spec({**spec_data, "hyperparameters": hyperparameters}), "hp-1")
    with pytest.raises(sdk_v3.ModelTrainerUnsupported, match=reason):
        sdk_v3.to_model_trainer(request, moto_aws)


def test_the_trainer_sends_telemetry_only_when_the_users_config_turns_it_on(moto_aws, v3_sent, tmp_path,
                                                                            spec_data, monkeypatch):
    import sagemaker.core.telemetry.telemetry_logging as telemetry

    calls = []
    monkeypatch.setattr(telemetry, "_send_telemetry_request", lambda *a, **k: calls.append(a))
    request = resolved(moto_aws, validate_spec(spec_data), "quiet-2")
    opted_in = "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: false\n"
    for config, expected_calls in (("", 0), (opted_in, 1)):
        path = tmp_path / f"config-{expected_calls}.yaml"
        path.write_text(f"SchemaVersion: '1.0'\n{config}")
        monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(path))
        opted_out = sdk_v3.sdk_config()["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"]
        assert opted_out is (expected_calls == 0)
        sdk_v3.to_model_trainer(request, moto_aws).train(wait=False, logs=False)
        assert len(calls) == expected_calls
    assert len(v3_sent) == 2
