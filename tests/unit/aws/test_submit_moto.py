"""Submitting to in-process moto with boto3: assert on the request sent (captured by botocore's own hook) and on
what was uploaded before it."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from smjobs.aws import submit as sagemaker_edge
from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR, example_path, read_spec_data

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"


def settings(sent) -> dict:
    """The strategy's settings: in the job's environment, never among the script's flags."""
    assert not {"parallel", "backend", "fsdp_sharding", "pp_degree"} & set(sent["HyperParameters"])
    return json.loads(sent["Environment"]["SMJOBS_DISTRIBUTION"])


def submit(aws, data):
    spec = validate_spec(data)
    resolved = sagemaker_edge.resolve(spec, aws)
    request = sagemaker_edge.resolved_request(spec, aws, resolved)
    name = sagemaker_edge.submit(request, aws)
    assert len(aws.sent) == 1
    return request, name, aws.sent[0]


def test_ddp_request(moto_aws):
    request, name, sent = submit(moto_aws, read_spec_data(example_path("ddp_mlp")))
    hps = sent["HyperParameters"]
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.g5.12xlarge"'
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "4"
    assert settings(sent) == {"parallel": "ddp"}
    assert json.loads(json.loads(hps["optimizer"])) == {"name": "adamw", "betas": [0.9, 0.95], "weight_decay": 0.01}
    assert json.loads(json.loads(hps["hidden_sizes"])) == [256, 256]
    assert hps["sagemaker_program"] == '"train.py"'
    assert sent["AlgorithmSpecification"]["TrainingImage"] == IMAGE + "2.8.0-gpu-py312"
    assert sent["AlgorithmSpecification"]["MetricDefinitions"][0] == {"Name": "train:loss", "Regex": "loss=([0-9.eE+-]+)"}
    assert sent["ResourceConfig"] == {"VolumeSizeInGB": 100, "InstanceCount": 2, "InstanceType": "ml.g5.12xlarge"}
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert "EnableManagedSpotTraining" not in sent and "VpcConfig" not in sent
    assert sent == request.create_training_job  # the dry run predicts exactly what is sent
    assert moto_aws.client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobName"] == name


def test_fsdp_spot_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("fsdp_gpt_spot")))
    hps = sent["HyperParameters"]
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    s = settings(sent)
    assert (s["parallel"], s["fsdp_sharding"], s["fsdp_shard_degree"], s["mixed_precision"]) == ("fsdp", "hybrid_shard", 8, "bf16")
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "8"
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 36000, "MaxWaitTimeInSeconds": 72000}
    assert sent["CheckpointConfig"] == {"S3Uri": "s3://my-training-checkpoints/fsdp-gpt", "LocalPath": "/opt/ml/checkpoints"}
    assert sent["InputDataConfig"] == [{
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://my-training-data/tokens/train",
                                        "S3DataDistributionType": "ShardedByS3Key"}},
        "InputMode": "FastFile", "ChannelName": "train"}]
    assert sent["ResourceConfig"]["InstanceType"] == "ml.p4d.24xlarge"
    assert sent == request.create_training_job


def test_smddp_vpc_kms_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("smddp_cnn")))
    hps = sent["HyperParameters"]
    assert hps["sagemaker_distributed_dataparallel_enabled"] == "true"
    assert hps["sagemaker_distributed_dataparallel_custom_mpi_options"] == '""'
    assert "sagemaker_torch_distributed_enabled" not in hps
    assert settings(sent) == {"parallel": "ddp", "backend": "smddp"}
    assert sent["AlgorithmSpecification"]["TrainingImage"] == IMAGE + "2.2.0-gpu-py310"
    assert sent["VpcConfig"] == {"Subnets": ["subnet-0a1b2c3d4e5f67890"], "SecurityGroupIds": ["sg-0a1b2c3d4e5f67890"]}
    assert sent["EnableInterContainerTrafficEncryption"] is True
    assert sent["ResourceConfig"]["VolumeKmsKeyId"] == "alias/smjobs-volume"
    assert sent["OutputDataConfig"]["KmsKeyId"] == "alias/smjobs-output"
    assert sent == request.create_training_job


def test_network_isolation_env_tags_and_local_channel(moto_aws, spec_data, tmp_path):
    (tmp_path / "part-0.pt").write_bytes(b"data")
    data = {**spec_data, "environment": {"NCCL_DEBUG": "INFO"}, "tags": {"team": "ml"},
            "security": {"network_isolation": True}, "inputs": {"train": {"uri": str(tmp_path)}}}
    request, name, sent = submit(moto_aws, data)
    assert sent["EnableNetworkIsolation"] is True
    assert sent["Environment"] == {"NCCL_DEBUG": "INFO", "SMJOBS_DISTRIBUTION": "{\"parallel\":\"ddp\"}"}
    assert sent["Tags"] == [{"Key": "smjobs:managed-by", "Value": "smjobs"}, {"Key": "smjobs:spec", "Value": "unit-ddp"},
                            {"Key": "team", "Value": "ml"}]
    uri = sent["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == f"s3://{request.bucket}/{name}/input/train"
    keys = [o["Key"] for o in moto_aws.client("s3").list_objects_v2(Bucket=request.bucket, Prefix=f"{name}/input/")["Contents"]]
    assert keys == [f"{name}/input/train/part-0.pt"]
    assert sent == request.create_training_job


@pytest.mark.parametrize("example", ["ddp_mlp", "smddp_cnn", "smp_v1_gpt"])
def test_uploaded_source_dir_is_entry_points_without_smdistributed(moto_aws, example):
    import importlib.util

    assert importlib.util.find_spec("smdistributed") is not None  # the stub is installed here, and still not uploaded
    request, name, sent = submit(moto_aws, read_spec_data(example_path(example)))
    uri = json.loads(sent["HyperParameters"]["sagemaker_submit_directory"])
    bucket, key = uri[len("s3://"):].split("/", 1)
    body = moto_aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        members = {m.name for m in tar.getmembers() if m.isfile() and "__pycache__" not in m.name}
    expected = {str(p.relative_to(ENTRY_POINTS_DIR)) for p in ENTRY_POINTS_DIR.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not any(x.endswith(".egg-info") for x in p.parts)}
    assert members == expected
    assert "train.py" in members and "smjobs_runtime.py" in members
    assert not any(part == "smdistributed" or part.startswith("smdistributed") for m in members for part in m.split("/"))


def test_invalid_spec_creates_nothing(moto_bare, spec_data):
    with pytest.raises(SpecError):
        submit(moto_bare, {**spec_data, "compute": {"instance_type": "ml.m5.xlarge"}})
    assert moto_bare.sent == []
    assert moto_bare.client("s3").list_buckets()["Buckets"] == []
    assert moto_bare.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_guard_refuses_a_request_the_service_would_reject(moto_aws, spec_data):
    """The last net: a request broken after validation is stopped before CreateTrainingJob is sent."""
    spec = validate_spec(spec_data)
    resolved = sagemaker_edge.resolve(spec, moto_aws)
    request = build_request(spec, region="us-east-1", bucket=resolved.bucket, role_arn=resolved.role_arn)
    ctj = request.create_training_job
    broken = type(request)(**{**request.to_dict(), "create_training_job": {
        **ctj, "ResourceConfig": {**ctj["ResourceConfig"], "InstanceType": "ml.g9.huge"}}})
    with pytest.raises(SpecError, match="ResourceConfig.InstanceType"):
        sagemaker_edge.submit(broken, moto_aws)
    assert moto_aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_unresolved_request_is_not_submitted(moto_aws, spec_data):
    with pytest.raises(ValueError, match="unresolved"):
        sagemaker_edge.submit(build_request(validate_spec(spec_data)), moto_aws)
    assert moto_aws.sent == []


SMP_IMAGE = "658645717510.dkr.ecr.us-east-1.amazonaws.com/smdistributed-modelparallel:"


def test_pipeline_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("pipeline_gpt")))
    hps = sent["HyperParameters"]
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    s = settings(sent)
    assert (s["pp_degree"], s["dp_degree"], s["tp_degree"], s["pp_virtual_stages"], s["pp_microbatches"]) == (4, 2, 1, 2, 8)
    assert s["pp_schedule"] == "Interleaved1F1B" and s["parallel"] == "pipeline"
    assert hps["sagemaker_program"] == '"train_pipeline.py"'
    assert "mp_parameters" not in hps
    assert sent["AlgorithmSpecification"]["TrainingImage"] == IMAGE + "2.8.0-gpu-py312"
    assert sent == request.create_training_job


def test_naive_mp_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("naive_mp_mlp")))
    assert settings(sent) == {"parallel": "naive_mp"}
    assert sent["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert sent == request.create_training_job


def test_smp_v2_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("smp_v2_gpt")))
    hps = sent["HyperParameters"]
    assert json.loads(hps["mp_parameters"]) == {"hybrid_shard_degree": 8, "tensor_parallel_degree": 2,
                                                "sm_activation_offloading": True, "activation_loading_horizon": 2}
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_distributed_dataparallel_enabled"] == "false"
    assert "sagemaker_mpi_enabled" not in hps
    assert sent["AlgorithmSpecification"]["TrainingImage"] == SMP_IMAGE + "2.4.1-gpu-py311-cu121"
    assert sent == request.create_training_job


def test_smp_v1_request(moto_aws):
    request, _, sent = submit(moto_aws, read_spec_data(example_path("smp_v1_gpt")))
    hps = sent["HyperParameters"]
    assert hps["sagemaker_mpi_enabled"] == "true"
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "8"
    assert hps["sagemaker_mpi_custom_mpi_options"] == '""'
    assert json.loads(hps["mp_parameters"]) == {"partitions": 2, "microbatches": 4, "pipeline": "interleaved",
                                                "optimize": "speed", "placement_strategy": "cluster", "ddp": True,
                                                "tensor_parallel_degree": 2}
    assert "sagemaker_torch_distributed_enabled" not in hps
    assert sent["AlgorithmSpecification"]["TrainingImage"] == IMAGE + "2.0.0-gpu-py310"
    assert sent == request.create_training_job
