"""JobSpec: the one frozen, documented description of a training job, loaded from YAML/JSON or built in Python.

The spec says what the user wants; it holds no AWS state. ``smjobs.checks.validate`` checks it,
``smjobs.request.training.build_request`` turns it into the request that is submitted or run locally.
Every field carries its unit in its name (``_gb``, ``_s``) and a docstring.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from smjobs.spec.field_docs import describe_fields
from smjobs.spec.file import read_spec_data  # noqa: F401  (the reader lives there; spec files are read through it)
from smjobs.spec.strategies import DDP, Strategy
from smjobs.spec.tracking import TrackingSettings
from smjobs.spec.tuning import TuningSettings

ENTRY_POINTS_DIR = Path(importlib.util.find_spec("smjobs.entry_points").submodule_search_locations[0]).resolve()
"""The bundled training scripts (``entry_points/`` in the repository, ``smjobs/entry_points`` installed)."""

HyperparameterValue = str | bool | int | float | list | dict | None


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (NUL, a newline, ...): in a path, a typo, never a file, and what
    stops ``os.path`` with a ValueError."""
    return any(ord(c) < 32 for c in text)


def _printable(value: str) -> str:
    # a path goes to the file system (resolve, stat) before the rules run
    if has_control_character(value):
        raise PydanticCustomError("smjobs", "holds a control character, so it names no file, folder or S3 location",
                                  {"fix": "write it as printable text."})
    return value


Location = Annotated[str, AfterValidator(_printable)]
"""A path or URI: printable text."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


DEFAULT_FRAMEWORK_VERSION = "2.13"
"""The newest PyTorch the bundled scripts are tested with (torch 2.13.0 here): its SageMaker image is the
Amazon Linux 2023 one (``pytorch:2.13-cu133-amzn2023-sagemaker``). 2.14 has an image, but untested scripts."""

MAX_INSTANCES = 10_000
"""Upper bound on instance counts: far above any account's training quota, low enough that planning stays finite."""
AUTO = "auto"
"""``compute.instance_type: auto``: the planner chooses."""


class InstancePreference(_Frozen):
    """One entry of SageMaker's ``ResourceConfig.InstancePreferences``."""

    instance_type: str
    """A GPU training instance type, e.g. ``ml.p4d.24xlarge``."""
    instance_count: int = Field(default=1, ge=1, le=MAX_INSTANCES)
    """Instances of that type."""


class Compute(_Frozen):
    """Where the job runs and for how long."""

    instance_type: str
    """A GPU training instance type, e.g. ``ml.g5.12xlarge``, or ``auto``: the planner picks the cheapest type,
    count and parallel degrees that fit (see ``plan``)."""
    instance_count: int = Field(default=1, le=MAX_INSTANCES)
    """Number of instances (hosts)."""
    volume_size_gb: int = Field(default=100, le=16_384)
    """EBS volume attached to each instance, in GB (at most 16 TiB, EBS's largest volume)."""
    max_run_s: int = 24 * 3600
    """Hard limit on training time, in seconds."""
    use_spot: bool = False
    """Run on managed spot capacity (cheaper, interruptible; needs checkpoint_s3_uri and max_wait_s)."""
    max_wait_s: int | None = None
    """With spot: how long to wait for capacity plus run, in seconds; at least max_run_s."""
    instance_preferences: tuple[InstancePreference, ...] = ()
    """Up to 5 {instance_type, instance_count}, most preferred first: SageMaker starts the job on the first one it
    has capacity for (``ResourceConfig.InstancePreferences``). The first is instance_type x instance_count. Not
    with use_spot (the API forbids it). ``plan.instance_preferences`` fills it from the planner's ranking."""
    image_uri: str | None = None
    """Any training image instead of SageMaker's PyTorch one, e.g. your own in ECR:
    ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` (or ``@sha256:<digest>``).
    framework_version and py_version are then not checked against SageMaker's images. For script mode the image
    must run SageMaker's training toolkit (sagemaker-training and sagemaker-pytorch-training), and carry SMDDP
    or SMP when the strategy uses them. Local runs do not use it."""


class Channel(_Frozen):
    """One input data channel, mounted at ``/opt/ml/input/data/<name>`` (``SM_CHANNEL_<NAME>``)."""

    uri: Location = Field(min_length=1)
    """An ``s3://bucket/prefix`` URI, or a local directory that is uploaded at submit."""
    input_mode: Literal["File", "FastFile"] = "File"
    """File copies the data before training; FastFile streams it from S3 on demand."""
    s3_data_type: Literal["S3Prefix", "ManifestFile"] = "S3Prefix"
    """S3Prefix: every object under the URI; ManifestFile: the URI is a manifest listing the objects (a local
    ``*.manifest`` is laid out file by file for local runs and uploaded as a prefix at submit)."""
    s3_distribution: Literal["FullyReplicated", "ShardedByS3Key"] = "FullyReplicated"
    """FullyReplicated gives every instance all objects; ShardedByS3Key splits objects across instances."""
    content_type: str | None = None
    """MIME type passed to the container, if the script wants it."""


class Security(_Frozen):
    """Network placement and encryption."""

    subnets: tuple[str, ...] = ()
    """VPC subnet IDs (``subnet-...``); give security_group_ids with them."""
    security_group_ids: tuple[str, ...] = ()
    """VPC security group IDs (``sg-...``)."""
    network_isolation: bool = False
    """No outbound network from the training container."""
    encrypt_inter_container_traffic: bool = False
    """Encrypt traffic between instances of a multi-instance job."""
    volume_kms_key: str | None = None
    """KMS key (ID, ARN or alias) for the instances' EBS volumes."""
    output_kms_key: str | None = None
    """KMS key for the model artefacts and output written to S3."""


class PlanModel(_Frozen):
    """An analytic description of a decoder-only transformer, for planning."""

    layers: int = Field(ge=1, le=100_000)
    """Transformer blocks."""
    hidden: int = Field(ge=1, le=2**20)
    """Model (embedding) width."""
    heads: int = Field(ge=1, le=2**16)
    """Attention heads."""
    seq_len: int = Field(ge=1, le=2**24)
    """Tokens per sequence."""
    vocab: int = Field(ge=1, le=2**24)
    """Vocabulary size."""
    parameters: int | None = Field(default=None, ge=1, le=10**14)
    """Total parameters; by default counted from the shape (12*layers*hidden^2 + (vocab + seq_len)*hidden for GPT)."""
    kv_heads: int | None = Field(default=None, ge=1, le=2**16)
    """Key/value heads under grouped-query attention (Llama 3: 8); by default ``heads``."""
    ffn_hidden: int | None = Field(default=None, ge=1, le=2**22)
    """MLP width (Llama 3 8B: 14336); by default 4 x hidden."""
    gated_mlp: bool = False
    """A gated (SwiGLU) MLP, as Llama's."""
    dropout: bool = True
    """Dropout layers (GPT-2 has them, Llama has none)."""
    tied_embeddings: bool = True
    """The output layer shares the input embedding (GPT-2); Llama keeps its own."""


FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"


class PlanSettings(_Frozen):
    """What ``instance_type: auto`` and ``smjobs plan`` plan for, and the limits they respect."""

    model: PlanModel | None = None
    """The model, described; by default read from the bundled gpt model's hyperparameters (n_layers, d_model, ...)."""
    model_factory: str | None = Field(default=None, pattern=FACTORY_PATTERN)
    """Your own model instead: ``module:function`` in source_dir that returns the ``nn.Module``. Its memory and FLOPs
    are traced under FakeTensorMode (nothing is allocated); plans cover ddp, smddp and fsdp."""
    batch_factory: str | None = Field(default=None, pattern=FACTORY_PATTERN)
    """With model_factory: ``module:function`` taking a micro-batch size and returning ``(inputs, targets)``."""
    loss_fn: str | None = Field(default=None, pattern=FACTORY_PATTERN)
    """With model_factory: ``module:function(output, targets)`` returning the loss; by default the output's sum."""
    micro_batch: int = Field(default=1, ge=1, le=2**20)
    """Largest number of sequences one GPU processes at once."""
    global_batch: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """Sequences per optimizer step; by default hyperparameters.global_batch_size."""
    steps: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """Optimizer steps of the job; by default hyperparameters.steps."""
    max_usd_per_hour: float | None = Field(default=None, gt=0, le=1e7)
    """Price limit for all instances together (spot-adjusted with use_spot)."""
    max_instances: int = Field(default=8, ge=1, le=MAX_INSTANCES)
    """Most instances the planner may choose (each count is planned: the bound keeps that finite)."""
    families: tuple[str, ...] = ()
    """Allowed instance families, e.g. ``[p4d, p5]``; empty allows every family."""
    memory_margin: float = Field(default=0.10, ge=0, lt=1)
    """Share of GPU memory kept free."""
    mfu: float | None = Field(default=None, gt=0, le=1)
    """Assumed share of the GPUs' peak FLOPs (of the precision used) the job reaches: its MFU without
    recomputation (recomputed FLOPs run at the same rate). By default each GPU model's figure from published runs
    (A100 and H100 differ; ``smjobs plan`` prints the one it used); replace it with a measured figure when you
    have one."""
    precision: Literal["mixed", "bf16", "tf32", "fp32"] = "mixed"
    """mixed: bf16/fp16 autocast with fp32 master weights (16 bytes per parameter with Adam); bf16: pure bf16
    weights, gradients and optimizer state (8 bytes); tf32: fp32 storage with TF32 matmuls; fp32: all fp32."""
    recompute: Literal["none", "selective", "selective_op", "full"] | None = None
    """Activation checkpointing the script does; None lets the planner choose (none, selective or full).
    selective_op is torchtitan's per-op policy (every other matmul output kept)."""
    loss: Literal["eager", "fused", "chunked"] = "eager"
    """How the script computes the loss over the vocabulary, which decides what the logits cost: eager
    (``F.cross_entropy`` on the whole output, as the bundled scripts do: 14 bytes per logit under mixed precision),
    fused (a fused cross-entropy such as Liger's: 4 bytes) or chunked (computed a chunk of the sequence at a time:
    about none)."""
    sequence_parallel: bool | None = None
    """Whether the script splits the norm and dropout activations over the tensor-parallel ranks (Megatron's
    sequence parallelism) where tensor parallelism is planned; None lets the planner choose (it then says so in
    the layout). The bundled scripts do not."""
    records: int | None = Field(default=None, ge=1, le=10**13)
    """Inference: records in the data set (each a sequence of plan.model.seq_len tokens); by default counted from
    a local input folder of JSON Lines and CSV files."""
    generated_tokens: int = Field(default=0, ge=0, le=2**20)
    """Inference: tokens generated per record (a KV cache is kept); 0 scores records as they are."""
    instance_preferences: int = Field(default=0, ge=0, le=5)
    """With instance_type auto: how many ranked {type, count} entries to give SageMaker as
    compute.instance_preferences (0: none), each fitting in memory, priced, and valid for the chosen degrees."""
    max_hours: float | None = Field(default=None, gt=0, le=28 * 24)
    """Time budget of the job when compute.max_run_s is not set: plans that take longer are rejected, and the
    chosen plan's job gets this limit as its max_run_s. With max_run_s set, plans respect max_run_s."""


class BatchTransformSettings(_Frozen):
    """The Batch Transform backend (``smjobs infer --backend batch-transform``): a SageMaker model with the bundled
    ``serve.py`` and a transform job over the input. It splits work by S3 object, one model server per instance."""

    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "MultiRecord"
    """MultiRecord: as many lines per request as fit in max_payload_mb; SingleRecord: one line per request."""
    max_payload_mb: int = 6
    """Largest request body, in MB (1 to 100); a single record larger than this fails."""
    max_concurrent_transforms: int | None = None
    """Parallel requests to each instance; by default one per GPU of the instance type. Times max_payload_mb at
    most 100."""
    join_source: Literal["Input", "None"] = "Input"
    """Input: each output line is its input record with the prediction added (``SageMakerOutput``)."""
    content_type: Literal["application/jsonlines", "text/csv"] | None = None
    """The records' type; by default from the input files (JSON Lines unless every file is .csv)."""
    framework_version: str | None = None
    """PyTorch version of the inference image (pytorch-inference); by default the newest one the SDK knows. Its
    images end at an older version than the training images."""


class InferenceSettings(_Frozen):
    """An inference job: run a trained model over every record of a data set, data-parallel (``smjobs infer``).

    smjobs turns it into the job's ordinary fields (``smjobs.inference.section.expand``): the bundled ``infer.py`` under
    torchrun, a ``data`` and a ``model`` channel, these settings as hyperparameters, and ``output_path`` as the
    checkpoint location (finished parts are the checkpoints; predictions.jsonl lands beside them)."""

    model: Location
    """The trained model: a training job's ``model.tar.gz`` (S3 URI), an S3 prefix or local folder holding
    ``model.pt`` or ``model.tar.gz``, or a local ``model.pt``. A local one is relative to the spec file."""
    input: Location
    """The records: an S3 prefix or local folder of JSON Lines, CSV or ``.pt`` files (relative to the spec file),
    or a manifest of such files (``*.manifest``, SageMaker's format: ``[{"prefix": ...}, "key", ...]``)."""
    output_path: Location
    """``s3://bucket/prefix`` for predictions.jsonl, errors.jsonl and the finished parts."""
    batch_size: int = Field(default=64, ge=1, le=2**20)
    """Records per forward pass on one process."""
    part_records: int = Field(default=1000, ge=1, le=10**9)
    """Records per part: the unit written atomically, marked done and skipped by a rerun."""
    max_bad_records: int = Field(default=0, ge=0, le=2**31 - 1)
    """Records that cannot be read (bad JSON, wrong shape) the job tolerates; they go to errors.jsonl with their ids."""
    input_field: str = "inputs"
    """JSON Lines: the field holding a record's input."""
    id_field: str = "id"
    """JSON Lines and CSV: the field or column holding a record's id (by default ``<file>:<position>``)."""
    model_factory: str | None = Field(default=None, pattern=FACTORY_PATTERN)
    """Your own model: ``module:function`` in source_dir (by default the spec file's folder) returning the
    ``nn.Module``; ``model`` then holds its weights (a state dict, or ``{"model": state_dict}``)."""
    backend: Literal["training-job", "batch-transform"] = "training-job"
    """training-job: a training job under torchrun, records split over every GPU of every host, resumable;
    batch-transform: SageMaker Batch Transform (``batch_transform``), which splits by S3 object."""
    batch_transform: BatchTransformSettings = Field(default_factory=BatchTransformSettings)
    """Settings of the batch-transform backend."""


class MetricDefinition(_Frozen):
    """A metric SageMaker scrapes from the job's log with a regular expression."""

    name: str
    """Metric name shown in CloudWatch and the console, e.g. ``train:loss``."""
    regex: str
    """Regular expression with one capture group for the value, e.g. ``loss=([0-9.eE+-]+)``."""


class JobSpec(_Frozen):
    """A distributed PyTorch training job for SageMaker."""

    name: str
    """Base job name; a timestamp is appended per submission (at most 47 characters)."""
    entry_point: Location
    """Training script, relative to source_dir, e.g. ``train.py``."""
    compute: Compute
    """Instances and limits."""
    source_dir: Location | None = None
    """Folder uploaded as the job's code (filtered: see ``smjobs.request.source``). In a spec file, relative to the file;
    when absent, the spec file's own folder if the entry point is there or is not one of smjobs' bundled scripts,
    else the bundled scripts' folder."""
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)
    """Script arguments (``--key value``); lists, dicts, bools and numbers reach the script intact."""
    distribution: Strategy = Field(default_factory=DDP)
    """How the job spreads over GPUs: ``type`` is ddp, fsdp, smddp, pipeline, naive_mp, smp_v2 or smp_v1, with
    that strategy's settings beside it."""
    framework_version: str = DEFAULT_FRAMEWORK_VERSION
    """PyTorch version of the SageMaker training image; by default the newest the bundled scripts are tested
    with. SMDDP and SMP have images for older versions only (validation names them)."""
    py_version: str = "py312"
    """Python version of the training image, e.g. ``py312``. Not used for images whose tag names no Python
    (the Amazon Linux 2023 ones, from PyTorch 2.11), as the SDK does not use it."""
    inputs: dict[str, Channel] = Field(default_factory=dict)
    """Input channels by name."""
    output_path: Location | None = None
    """S3 URI for model artefacts; defaults to the session's bucket."""
    checkpoint_s3_uri: Location | None = None
    """S3 URI that SageMaker syncs with checkpoint_local_path; required with spot."""
    checkpoint_local_path: Location = "/opt/ml/checkpoints"
    """Directory in the container that is synced to checkpoint_s3_uri."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Environment variables for the training container."""
    tags: dict[str, str] = Field(default_factory=dict)
    """AWS tags on the training job."""
    security: Security = Field(default_factory=Security)
    """VPC and encryption settings."""
    metric_definitions: tuple[MetricDefinition, ...] = ()
    """Metrics scraped from the log."""
    role_arn: str | None = None
    """IAM execution role ARN; when absent, submit uses --role, the notebook's role in Studio, the smjobs stack's
    role or an existing role of smjobs' name (it creates one only with --create-infra)."""
    inference: InferenceSettings | None = None
    """Makes this an inference job (see InferenceSettings)."""
    tuning: TuningSettings | None = None
    """A hyperparameter search over this job (``smjobs tune``): parameters, objective, strategy, limits."""
    region: str | None = None
    """AWS region; when absent, the CLI's --region or the AWS configuration decides."""
    plan: PlanSettings = Field(default_factory=PlanSettings)
    """Model and limits for choosing instances (``instance_type: auto``, ``smjobs plan``)."""
    tracking: TrackingSettings | None = None
    """Experiment tracking: the MLflow server and experiment the job's one run goes into (``tracking.mlflow``)."""

    # ----- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``JobSpec.model_validate`` turns back into an equal spec."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        if "distribution" in data:  # the tag selects the strategy class: keep it even though it is a default
            data["distribution"] = {"type": self.distribution.type, **data["distribution"]}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def bundled_scripts() -> list[str]:
    """smjobs' own training scripts (``train.py``, ...), which run without a source_dir."""
    return sorted(p.name for p in ENTRY_POINTS_DIR.glob("*.py") if not p.name.startswith("_") and p.name != "smjobs_runtime.py")


def resolve_file_paths(data: dict[str, Any], spec_file: Path) -> dict[str, Any]:
    """Spec data read from ``spec_file`` with its paths made absolute: relative paths in a file are relative to the
    file. Without source_dir, the code is the file's folder when the entry point is there or is not a bundled
    script (so errors name that folder); a bundled script name alone means smjobs' own."""
    data = dict(data)
    folder = Path(spec_file).resolve().parent

    def local(value: Any) -> bool:
        # an empty path or one with a control character is left as written, for validation to refuse by name
        return isinstance(value, str) and bool(value) and "://" not in value and not has_control_character(value)

    entry = data.get("entry_point")
    if local(data.get("source_dir")):
        data["source_dir"] = str((folder / Path(data["source_dir"]).expanduser()).resolve())
    elif not data.get("source_dir") and isinstance(entry, str) and (
            entry not in bundled_scripts() or (local(entry) and (folder / entry).is_file())):
        data["source_dir"] = str(folder)
    if isinstance(data.get("inference"), dict):
        section = dict(data["inference"])
        for key in ("model", "input"):
            if local(section.get(key)):
                section[key] = str((folder / Path(section[key]).expanduser()).resolve())
        data["inference"] = section
        if section.get("model_factory") and not data.get("source_dir"):
            data["source_dir"] = str(folder)  # the factory's module is the user's: smjobs adds infer.py to it
    if isinstance(data.get("inputs"), dict):
        inputs = {}
        for name, channel in data["inputs"].items():
            if isinstance(channel, dict) and local(channel.get("uri")):
                channel = {**channel, "uri": str((folder / Path(channel["uri"]).expanduser()).resolve())}
            inputs[name] = channel
        data["inputs"] = inputs
    return data


def example_path(name: str) -> Path:
    """Path of a spec shipped in ``jobs/examples`` (``ddp_mlp`` or ``ddp_mlp.yaml``)."""
    examples = Path(__file__).parents[1] / "examples"
    candidate = examples / (name if name.endswith((".yaml", ".json")) else f"{name}.yaml")
    if not candidate.exists():
        known = sorted(p.stem for p in examples.glob("*.yaml"))
        raise FileNotFoundError(f"no example spec {name!r}; shipped examples: {', '.join(known)}")
    return candidate


describe_fields(__name__)  # each field's docstring is its description
