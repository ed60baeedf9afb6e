"""Tables of valid and invalid specs: every rule, with the field path and message it must produce."""

from __future__ import annotations

import copy
import warnings

import pytest

from smjobs import api
from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError
from smjobs.request.training import build_request

DELETE = object()


def apply(data: dict, changes: dict) -> dict:
    data = copy.deepcopy(data)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return data


AKIA = "AKIA" + "IOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"

VALID = {
    "ddp-default": {},
    "ddp-one-gpu-instance": {"compute.instance_type": "ml.g5.xlarge", "compute.instance_count": 1},
    "ddp-fewer-processes": {"distribution.processes_per_host": 2},
    "version-alias": {"framework_version": "2.7", "py_version": "py312"},
    "newest-image": {"framework_version": "2.14"},
    "al2023-image-any-py": {"framework_version": "2.11", "py_version": "py313"},
    "ubuntu-2.10": {"framework_version": "2.10.0", "py_version": "py313"},
    "fsdp-full-shard": {"distribution": {"type": "fsdp"}},
    "fsdp-hybrid": {"distribution": {"type": "fsdp", "sharding": "hybrid_shard", "shard_degree": 4}},
    "fsdp-fp16-on-v100": {"compute.instance_type": "ml.p3.16xlarge", "distribution": {"type": "fsdp", "mixed_precision": "fp16"}},
    "smddp-p4d": {"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smddp"}, "framework_version": "2.2.0", "py_version": "py310"},
    "smddp-p4de": {"compute.instance_type": "ml.p4de.24xlarge", "distribution": {"type": "smddp"}, "framework_version": "2.1.0", "py_version": "py310"},
    "spot": {"compute.use_spot": True, "compute.max_wait_s": 100000, "checkpoint_s3_uri": "s3://ckpt-bucket/run1"},
    "channels": {"inputs": {"train": {"uri": "s3://data-bucket/train", "input_mode": "FastFile", "s3_distribution": "ShardedByS3Key"}}},
    "local-channel": {"inputs": {"train": {"uri": "."}}},
    "vpc-and-kms": {"security": {"subnets": ["subnet-0a1b2c3d"], "security_group_ids": ["sg-0a1b2c3d"],
                                  "volume_kms_key": "alias/train", "output_kms_key": "1234abcd-12ab-34cd-56ef-1234567890ab",
                                  "network_isolation": True, "encrypt_inter_container_traffic": True}},
    "typed-hyperparameters": {"hyperparameters": {"layers": [1, 2], "opt": {"b": [0.9, 0.95]}, "flag": False, "lr": 1e-4, "name": "x"}},
    "metrics": {"metric_definitions": [{"name": "loss", "regex": "loss=([0-9.]+)"}]},
    "tags-env": {"tags": {"team": "ml"}, "environment": {"NCCL_DEBUG": "INFO"}},
    "max-name": {"name": "a" * 47},
    "newest-gpu": {"compute.instance_type": "ml.p5en.48xlarge"},
    "region": {"region": "eu-west-1"},
    "pipeline-dp-pp": {"distribution": {"type": "pipeline", "dp_degree": 2, "pp_degree": 4, "microbatches": 4}},
    "pipeline-zbv": {"distribution": {"type": "pipeline", "pp_degree": 8, "schedule": "ZBVZeroBubble", "virtual_stages": 2, "microbatches": 16}},
    "naive": {"distribution": {"type": "naive_mp"}},
    "smp-v2": {"compute.instance_type": "ml.p5.48xlarge", "framework_version": "2.5.1", "py_version": "py311",
               "distribution": {"type": "smp_v2", "hybrid_shard_degree": 8, "tensor_parallel_degree": 2}},
    "smp-v1": {"compute.instance_type": "ml.p4de.24xlarge", "framework_version": "1.13.1", "py_version": "py39",
               "distribution": {"type": "smp_v1", "partitions": 4, "ddp": True}},
    "bundled-train-script": {"source_dir": DELETE, "entry_point": "train.py", "hyperparameters": {"hidden_sizes": [8], "steps": 3}},
}


@pytest.mark.parametrize("changes", VALID.values(), ids=VALID.keys())
def test_valid_specs(spec_data, changes):
    spec = validate_spec(apply(spec_data, changes))
    assert spec.name == apply(spec_data, changes)["name"]


# (changes, expected path, expected message fragment)
INVALID = {
    # structure
    "typo-processes-per-host": ({"distribution.process_per_host": 4}, "distribution.process_per_host", "did you mean 'processes_per_host'"),
    "typo-top-level": ({"hyperparameter": {}}, "hyperparameter", "did you mean 'hyperparameters'"),
    "typo-compute": ({"compute.instance_typ": "x"}, "compute.instance_typ", "did you mean 'instance_type'"),
    "s3-uri-one-slash": ({"inputs": {"train": {"uri": "s3:/b-bucket/x"}}}, "inputs.train.uri", "did you mean 's3://b-bucket/x'"),
    "s3-uri-capital": ({"output_path": "S3://b-bucket/out"}, "output_path", "did you mean 's3://b-bucket/out'"),
    "typo-channel": ({"inputs": {"train": {"uri": "s3://b-bucket/x", "inputmode": "File"}}}, "inputs.train.inputmode", "did you mean 'input_mode'"),
    "typo-fsdp-field": ({"distribution": {"type": "fsdp", "shardding": "full_shard"}}, "distribution.shardding", "did you mean 'sharding'"),
    "missing-compute": ({"compute": DELETE}, "compute", "is required"),
    "missing-instance-type": ({"compute.instance_type": DELETE}, "compute.instance_type", "is required"),
    "count-not-int": ({"compute.instance_count": "two"}, "compute.instance_count", "valid integer"),
    "unknown-strategy": ({"distribution": {"type": "horovod"}}, "distribution.type", "'horovod' is not a known strategy"),
    "bad-input-mode": ({"inputs": {"train": {"uri": "s3://b-bucket/x", "input_mode": "Pipe"}}}, "inputs.train.input_mode", "'File' or 'FastFile'"),
    "bad-s3-distribution": ({"inputs": {"train": {"uri": "s3://b-bucket/x", "s3_distribution": "Sharded"}}}, "inputs.train.s3_distribution", "FullyReplicated"),
    "bad-fsdp-sharding": ({"distribution": {"type": "fsdp", "sharding": "zero3"}}, "distribution.sharding", "full_shard"),
    # name
    "name-underscore": ({"name": "my_job"}, "name", "not a valid SageMaker job name"),
    "name-too-long": ({"name": "a" * 48}, "name", "at most 47"),
    "name-leading-hyphen": ({"name": "-job"}, "name", "not a valid SageMaker job name"),
    # code
    "entry-point-missing": ({"entry_point": "prbe.py"}, "entry_point", "did you mean 'probe.py'"),
    "hp-not-accepted-by-script": ({"source_dir": DELETE, "entry_point": "train.py", "hyperparameters": {"hidden_size": [8]}},
                                  "hyperparameters.hidden_size", "did you mean 'hidden_sizes'"),
    "sdk-flag-not-accepted": ({"entry_point": "strict.py", "hyperparameters": {}, "compute.instance_type": "ml.p4d.24xlarge",
                               "distribution": {"type": "smp_v2"}, "framework_version": "2.4.1", "py_version": "py311"},
                              "distribution.type", "passes --mp_parameters"),
    "entry-point-not-py": ({"entry_point": "train.sh"}, "entry_point", "not a Python file"),
    "entry-point-escapes": ({"entry_point": "../setup.py"}, "entry_point", "inside source_dir"),
    "source-dir-missing": ({"source_dir": "/nonexistent/dir"}, "source_dir", "is not a directory"),
    # compute
    "cpu-instance": ({"compute.instance_type": "ml.m5.xlarge"}, "compute.instance_type", "is a CPU instance"),
    "trainium-instance": ({"compute.instance_type": "ml.trn1.32xlarge"}, "compute.instance_type", "Trainium"),
    "unknown-instance": ({"compute.instance_type": "ml.g5.13xlarge"}, "compute.instance_type", "did you mean"),
    "excluded-instance": ({"compute.instance_type": "ml.p2.xlarge"}, "compute.instance_type", "K80"),
    "zero-instances": ({"compute.instance_count": 0}, "compute.instance_count", "at least one instance"),
    "zero-volume": ({"compute.volume_size_gb": 0}, "compute.volume_size_gb", "at least 1 GB"),
    "max-run-too-long": ({"compute.max_run_s": 30 * 24 * 3600}, "compute.max_run_s", "28 days"),
    "spot-without-wait": ({"compute.use_spot": True, "checkpoint_s3_uri": "s3://ckpt-bucket/x"}, "compute.max_wait_s", "is required with use_spot"),
    "spot-wait-too-short": ({"compute.use_spot": True, "compute.max_run_s": 3600, "compute.max_wait_s": 600, "checkpoint_s3_uri": "s3://ckpt-bucket/x"}, "compute.max_wait_s", "less than max_run_s"),
    "spot-without-checkpoint": ({"compute.use_spot": True, "compute.max_wait_s": 100000}, "checkpoint_s3_uri", "required with use_spot"),
    "wait-without-spot": ({"compute.max_wait_s": 100000}, "compute.max_wait_s", "only applies to spot"),
    # framework
    "no-image-version": ({"framework_version": "2.9.1"}, "framework_version", "no SageMaker training image"),
    "no-image-patch-of-al2023": ({"framework_version": "2.13.0"}, "framework_version", "2.13, 2.14"),
    "py-version-mismatch": ({"framework_version": "2.3.0", "py_version": "py312"}, "py_version", "py311"),
    "py-version-2.10": ({"framework_version": "2.10.0"}, "py_version", "set py_version to 'py313'"),
    "torch-distributed-version": ({"framework_version": "2.4.0", "py_version": "py311"}, "framework_version", "torch_distributed launcher does not support PyTorch 2.4.0"),
    "region-without-image": ({"region": "mars-east-1"}, "region", "not published"),
    # distribution
    "too-many-processes": ({"compute.instance_type": "ml.p3.8xlarge", "distribution.processes_per_host": 8}, "distribution.processes_per_host", "8 processes on ml.p3.8xlarge, which has 4 GPUs"),
    "more-processes-than-any-instance-has-gpus": ({"distribution.processes_per_host": 9}, "distribution.processes_per_host",
                                                  "no SageMaker GPU instance has 9 GPUs (the most is 8)"),
    "zero-processes": ({"distribution.processes_per_host": 0}, "distribution.processes_per_host", "greater than or equal to 1"),
    "smddp-on-g5": ({"distribution": {"type": "smddp"}, "framework_version": "2.2.0", "py_version": "py310"}, "compute.instance_type", "SMDDP does not run on ml.g5.12xlarge"),
    "smddp-on-p5": ({"compute.instance_type": "ml.p5.48xlarge", "distribution": {"type": "smddp"}, "framework_version": "2.2.0", "py_version": "py310"}, "compute.instance_type", "SMDDP does not run on ml.p5.48xlarge"),
    "smddp-new-torch": ({"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smddp"}}, "framework_version", "SMDDP has no release for PyTorch 2.13; its last is 2.2.0"),
    "fsdp-bf16-on-v100": ({"compute.instance_type": "ml.p3.16xlarge", "distribution": {"type": "fsdp"}}, "distribution.mixed_precision", "bf16 needs Ampere"),
    "fsdp-shard-degree-without-hybrid": ({"distribution": {"type": "fsdp", "shard_degree": 4}}, "distribution.shard_degree", "only applies to sharding: hybrid_shard"),
    "fsdp-hybrid-not-dividing": ({"distribution": {"type": "fsdp", "sharding": "hybrid_shard", "shard_degree": 3}}, "distribution.shard_degree", "do not divide the 8 processes"),
    # hyperparameters
    "hp-reserved-prefix": ({"hyperparameters": {"sagemaker_program": "x.py"}}, "hyperparameters.sagemaker_program", "reserved"),
    "hp-bad-key": ({"hyperparameters": {"learning rate": 0.1}}, "hyperparameters.learning rate", "cannot be a command-line flag"),
    "hp-key-too-long": ({"hyperparameters": {"k" * 257: 1}}, "hyperparameters." + "k" * 257, "SageMaker allows 256"),
    "hp-value-too-long": ({"hyperparameters": {"notes": "x" * 2600}}, "hyperparameters.notes", "SageMaker allows 2500"),
    "hp-too-many": ({"hyperparameters": {f"h{i}": i for i in range(95)}}, "hyperparameters", "SageMaker allows 100"),
    "hp-null": ({"hyperparameters": {"resume": None}}, "hyperparameters.resume", "empty string"),
    "hp-owned-by-strategy": ({"hyperparameters": {"parallel": "fsdp"}}, "hyperparameters.parallel", "contradicts distribution.type 'ddp'"),
    "hp-secret-key": ({"hyperparameters": {"wandb_api_key": "abc"}}, "hyperparameters.wandb_api_key", "looks like a secret"),
    "hp-aws-access-key": ({"hyperparameters": {"creds_hint": AKIA}}, "hyperparameters.creds_hint", "AWS access key ID"),
    "hp-aws-secret-in-list": ({"hyperparameters": {"extra": ["a", SECRET]}}, "hyperparameters.extra", "secret access key"),
    "env-secret": ({"environment": {"HF_TOKEN": "hf_abc"}}, "environment.HF_TOKEN", "looks like a secret"),
    # storage
    "output-not-s3": ({"output_path": "https://example.com/out"}, "output_path", "not an s3:// URI"),
    "checkpoint-bad-bucket": ({"checkpoint_s3_uri": "s3://Bad_Bucket/x"}, "checkpoint_s3_uri", "not a valid S3 bucket name"),
    "checkpoint-local-relative": ({"checkpoint_local_path": "checkpoints"}, "checkpoint_local_path", "absolute path"),
    "channel-local-missing": ({"inputs": {"train": {"uri": "/nonexistent/data"}}}, "inputs.train.uri", "does not exist"),
    "channel-other-scheme": ({"inputs": {"train": {"uri": "gs://bucket/x"}}}, "inputs.train.uri", "only s3://"),
    "channel-bad-name": ({"inputs": {"train data": {"uri": "s3://b-bucket/x"}}}, "inputs.train data", "channel name"),
    # security, tags, metrics
    "subnets-without-groups": ({"security": {"subnets": ["subnet-0a1b2c3d"]}}, "security.security_group_ids", "needs both"),
    "bad-subnet-id": ({"security": {"subnets": ["my-subnet"], "security_group_ids": ["sg-0a1b2c3d"]}}, "security.subnets.0", "not a subnet ID"),
    "bad-kms-key": ({"security": {"volume_kms_key": "my key"}}, "security.volume_kms_key", "not a KMS key"),
    "reserved-tag": ({"tags": {"aws:team": "ml"}}, "tags.aws:team", "reserved for AWS"),
    "metric-no-group": ({"metric_definitions": [{"name": "loss", "regex": "loss=[0-9.]+"}]}, "metric_definitions.0.regex", "no capture group"),
    "metric-bad-regex": ({"metric_definitions": [{"name": "loss", "regex": "loss=([0-9"}]}, "metric_definitions.0.regex", "not a valid regular expression"),
    "metric-duplicate": ({"metric_definitions": [{"name": "loss", "regex": "a=(1)"}, {"name": "loss", "regex": "b=(2)"}]}, "metric_definitions.1.name", "defined twice"),
    # degrees and schedules (2 x ml.g5.12xlarge: 8 processes)
    "pp-product": ({"distribution": {"type": "pipeline", "pp_degree": 4}}, "distribution",
                   "dp(1) x pp(4) x tp(1) = 4 != 2 instances x 4 processes = 8"),
    "pp-tp-across-hosts": ({"distribution": {"type": "pipeline", "pp_degree": 1, "tp_degree": 8}}, "distribution.tp_degree", "within an instance"),
    "gpipe-virtual": ({"distribution": {"type": "pipeline", "pp_degree": 8, "schedule": "GPipe", "virtual_stages": 2, "microbatches": 8}},
                      "distribution.virtual_stages", "GPipe runs one stage per rank"),
    "interleaved-needs-virtual": ({"distribution": {"type": "pipeline", "pp_degree": 8, "schedule": "Interleaved1F1B", "microbatches": 8}},
                                  "distribution.virtual_stages", "set virtual_stages to 2 or more"),
    "zbv-needs-two": ({"distribution": {"type": "pipeline", "pp_degree": 8, "schedule": "ZBVZeroBubble", "virtual_stages": 3, "microbatches": 16}},
                      "distribution.virtual_stages", "exactly 2 stages"),
    "1f1b-few-microbatches": ({"distribution": {"type": "pipeline", "pp_degree": 8, "microbatches": 4}}, "distribution.microbatches",
                              "4 < pp(8)"),
    "interleaved-rounds": ({"distribution": {"type": "pipeline", "pp_degree": 4, "dp_degree": 2, "schedule": "Interleaved1F1B",
                                             "virtual_stages": 2, "microbatches": 9}}, "distribution.microbatches", "multiple"),
    "dualpipev-microbatches": ({"distribution": {"type": "pipeline", "pp_degree": 8, "schedule": "DualPipeV", "virtual_stages": 2, "microbatches": 8}},
                               "distribution.microbatches", "8 < 16"),
    "microbatches-divide-batch": ({"distribution": {"type": "pipeline", "pp_degree": 4, "dp_degree": 2, "microbatches": 6},
                                   "hyperparameters": {"global_batch_size": 32}}, "distribution.microbatches",
                                  "do not divide the per-replica batch of 16"),
    "too-few-layers": ({"distribution": {"type": "pipeline", "pp_degree": 8, "microbatches": 8},
                        "hyperparameters": {"model": "gpt", "n_layers": 4}}, "distribution.pp_degree", "4 layers cannot fill"),
    "naive-too-few-layers": ({"distribution": {"type": "naive_mp"}, "hyperparameters": {"model": "mlp", "hidden_sizes": [8, 8]}},
                             "distribution", "3 layers cannot be split"),
    "smp-v2-instance": ({"distribution": {"type": "smp_v2"}, "framework_version": "2.4.1", "py_version": "py311"},
                        "compute.instance_type", "does not run on ml.g5.12xlarge"),
    "smp-v2-version": ({"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smp_v2"}}, "framework_version",
                       "no image for PyTorch '2.13'"),
    "smp-v2-py": ({"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smp_v2"}, "framework_version": "2.4.1"},
                  "py_version", "py311"),
    "smp-v2-cp-over-hsd": ({"compute.instance_type": "ml.p4d.24xlarge", "framework_version": "2.4.1", "py_version": "py311",
                            "distribution": {"type": "smp_v2", "hybrid_shard_degree": 2, "context_parallel_degree": 4}},
                           "distribution.context_parallel_degree", "context_parallel_degree 4 > hybrid_shard_degree 2"),
    "smp-v2-hsd-divides": ({"compute.instance_type": "ml.p4d.24xlarge", "framework_version": "2.4.1", "py_version": "py311",
                            "distribution": {"type": "smp_v2", "hybrid_shard_degree": 3}}, "distribution.hybrid_shard_degree", "does not divide"),
    "smp-v1-needs-ddp": ({"compute.instance_type": "ml.p4d.24xlarge", "framework_version": "2.0.0", "py_version": "py310",
                          "distribution": {"type": "smp_v1", "tensor_parallel_degree": 2}}, "distribution.ddp", "needs ddp: true"),
    "smp-v1-version": ({"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smp_v1", "ddp": True}},
                       "framework_version", "in maintenance"),
    "smp-v1-instance": ({"distribution": {"type": "smp_v1"}, "framework_version": "2.0.0", "py_version": "py310"},
                        "compute.instance_type", "does not run on ml.g5.12xlarge"),
    # compute.image_uri: the service's bound on TrainingImage, then an ECR image's shape
    "image-uri-not-ecr": ({"compute.image_uri": "pytorch/pytorch:2.13.0-cuda13.0"}, "compute.image_uri",
                          "is not an ECR image URI"),
    "image-uri-no-tag": ({"compute.image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-training"},
                         "compute.image_uri", "names no tag or digest"),
    "image-uri-bad-account": ({"compute.image_uri": "1234.dkr.ecr.us-east-1.amazonaws.com/my-training:1.0"},
                              "compute.image_uri", "<account>.dkr.ecr.<region>.amazonaws.com/<repository>"),
    "image-uri-too-long": ({"compute.image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/" + "r" * 250},
                           "compute.image_uri", "the service allows at most 255"),
    "image-uri-two-lines": ({"compute.image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/r:1\nx"},
                            "compute.image_uri", "does not match the service pattern"),
    # the service-model net (no hand-written rule covers these)
    "net-env-key-pattern": ({"environment": {"1BAD": "x"}}, "environment.1BAD", "does not match the service pattern"),
    "net-tag-value-pattern": ({"tags": {"team": "ml#1"}}, "tags.team", "does not match the service pattern"),
    "net-too-many-tags": ({"tags": {f"t{i}": "v" for i in range(51)}}, "tags", "at most 50"),
    "net-role-arn": ({"role_arn": "arn:aws:iam::123:role/x"}, "role_arn", "does not match the service pattern"),
}


@pytest.mark.parametrize("changes,path,fragment", INVALID.values(), ids=INVALID.keys())
def test_invalid_specs(spec_data, changes, path, fragment):
    data = apply(spec_data, changes)
    before = copy.deepcopy(data)
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    matching = [p for p in info.value.problems if p.path == path]
    assert matching, f"no problem at {path!r}; got {info.value.paths()}"
    assert any(fragment in p.message or fragment in p.fix for p in matching), str(info.value)
    assert data == before, "validation must not change its input"


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/my-training:2026-12"
P4D_SMDDP = {"compute.instance_type": "ml.p4d.24xlarge", "distribution": {"type": "smddp"}}
# Specs naming their own image (compute.image_uri): accepted with one warning of what the image must run,
# whatever the framework table says (an SMDDP job on 2.13 would otherwise be refused: the user may have built
# SMDDP into the image).
CUSTOM_IMAGE = {
    "tag": ({"compute.image_uri": IMAGE}, "training toolkit"),
    "digest": ({"compute.image_uri": IMAGE.split(":")[0] + "@sha256:" + "0a" * 32},
               "sagemaker-pytorch-training"),
    "china": ({"compute.image_uri": "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/train:1",
               "region": "cn-north-1"}, "training toolkit"),
    "smddp": ({"compute.image_uri": IMAGE, **P4D_SMDDP}, "and SMDDP (distribution.type smddp)"),
    "any-version": ({"compute.image_uri": IMAGE, "framework_version": "9.9", "py_version": "py27"},
                    "training toolkit"),
}


def validate_warned(data: dict):
    """(the validated spec, every warning validation raised: each call's, not only a process's first)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return validate_spec(data), caught


@pytest.mark.parametrize("changes,fragment", CUSTOM_IMAGE.values(), ids=CUSTOM_IMAGE.keys())
def test_a_custom_image_is_accepted_with_one_warning_and_sent_as_it_is(spec_data, changes, fragment):
    spec, caught = validate_warned(apply(spec_data, changes))
    assert len(caught) == 1 and fragment in str(caught[0].message), [str(w.message) for w in caught]
    assert caught[0].category is UserWarning and spec.compute.image_uri in str(caught[0].message)
    request = build_request(spec)
    assert request.create_training_job["AlgorithmSpecification"]["TrainingImage"] == spec.compute.image_uri


def test_a_custom_image_keeps_the_instance_rules(spec_data):
    with pytest.raises(SpecError) as info, pytest.warns(UserWarning, match="and SMDDP"):
        validate_spec(apply(spec_data, {"compute.image_uri": IMAGE, "distribution": {"type": "smddp"}}))
    assert info.value.paths() == ["compute.instance_type"]
    assert "SMDDP does not run on ml.g5" in str(info.value)


def test_a_local_run_of_a_custom_image_spec_does_not_use_the_image(spec_data, tmp_path):
    spec, _ = validate_warned(apply(spec_data, {"compute.image_uri": IMAGE}))
    request, layout = api.prepare_local(spec, processes=1, work_dir=tmp_path / "work")
    assert request.create_training_job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    laid_out = [f for f in (tmp_path / "work").rglob("*") if f.is_file()]
    assert (layout.code_dir / "probe.py").is_file() and laid_out
    assert not [f for f in laid_out if IMAGE.encode() in f.read_bytes()]  # runs here, not in the image


def test_smddp_and_smp_on_the_default_version_name_a_version_that_has_them(spec_data):
    for strategy, fix in (({"type": "smddp"}, "set framework_version to 2.2.0"),
                          ({"type": "smp_v1", "ddp": True}, "set framework_version to 2.0.0"),
                          ({"type": "smp_v2"}, "2.4.1, 2.5.1")):
        with pytest.raises(SpecError) as info:
            validate_spec(apply(spec_data, {**P4D_SMDDP, "distribution": strategy}))
        (problem,) = info.value.problems
        assert problem.path == "framework_version" and "2.13" in problem.message and fix in problem.fix


def test_table_is_large_enough():
    assert len(INVALID) >= 40


def test_every_problem_is_reported_at_once(spec_data):
    data = apply(spec_data, {
        "distribution.process_per_host": 4,      # structural
        "name": "bad_name",                      # name rule
        "compute.instance_type": "ml.m5.large",  # compute rule
        "framework_version": "9.9",              # framework rule
        "hyperparameters": {"db_password": "x"},  # secret rule
    })
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    assert {"distribution.process_per_host", "name", "compute.instance_type", "framework_version",
            "hyperparameters.db_password"} <= set(info.value.paths())
    text = str(info.value)
    assert text.startswith(f"{len(info.value.problems)} problems in the job spec:")
    assert "To fix:" in text


def test_messages_name_the_fix_with_alternatives(spec_data):
    data = apply(spec_data, {"compute.instance_type": "ml.p3.8xlarge", "distribution.processes_per_host": 8})
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    (problem,) = info.value.problems
    assert "at most 4" in problem.fix and "ml.p3.16xlarge" in problem.fix


def test_a_misspelled_required_section_is_one_problem_not_three(spec_data):
    """`compte:` for `compute:`: the misspelling, with its "did you mean", and not "compute: is required" besides
    (once per pass over the spec, as before)."""
    data = {k: v for k, v in spec_data.items() if k != "compute"}
    data["compte"] = spec_data["compute"]
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    assert [(p.path, p.message) for p in info.value.problems] == [("compte", "is not a known field.")]
    assert "did you mean 'compute'" in info.value.problems[0].fix
    without = {k: v for k, v in spec_data.items() if k != "compute"}
    with pytest.raises(SpecError) as missing:
        validate_spec(without)
    assert [(p.path, p.message) for p in missing.value.problems] == [("compute", "is required.")]


@pytest.mark.parametrize(("extra", "path", "fix"), [
    ({"environment": {"K" * 513: "v"}}, "environment." + "K" * 513, "shorten it to at most 512 characters"),
    ({"environment": {"OK": "v" * 600}}, "environment.OK", "shorten it to at most 512 characters"),
    ({"environment": {"BAD\nKEY": "v"}}, "environment.BAD\\nKEY", "match the service's pattern [a-zA-Z_][a-zA-Z0-9_]*"),
    ({"tags": {"team": "x" * 300}}, "tags.team", "shorten it to at most 256 characters"),
], ids=["long-env-key", "long-env-value", "newline-in-key", "long-tag-value"])
def test_service_model_problems_name_the_entry_and_what_the_service_requires(spec_data, extra, path, fix):
    with pytest.raises(SpecError) as info:
        validate_spec({**spec_data, **extra})
    (problem,) = info.value.problems
    assert problem.path == path and fix in problem.fix
    assert "\n" not in problem.path + problem.message + problem.fix  # one line each, control characters escaped


def test_a_batch_the_bundled_script_cannot_split_is_refused_before_launch(spec_data):
    """fsdp on 3 processes with global_batch_size 16: train.py would refuse it at start-up, so validate does."""
    data = {**spec_data, "entry_point": "train.py", "distribution": {"type": "fsdp", "processes_per_host": 3},
            "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 1},
            "hyperparameters": {"model": "mlp", "steps": 5, "global_batch_size": 16}}
    data.pop("source_dir")
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    (problem,) = info.value.problems
    assert problem.path == "hyperparameters.global_batch_size" and "3 data-parallel processes" in problem.message
    assert "multiple of 3" in problem.fix
    validate_spec({**data, "hyperparameters": {**data["hyperparameters"], "global_batch_size": 18}})
