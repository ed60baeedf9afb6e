"""What ``--output json`` (``-o json``) prints: one pydantic model per command, the stable schema scripts read.

Each document carries ``kind`` (which command wrote it) and ``schema_version``. Within a schema version fields are
only ever added, never renamed, retyped or removed. Bad input prints an ``ErrorOutput`` instead, with the same exit
code as the table output: each problem with its path, message and fix. ``logs`` writes JSON lines: one ``LogLine``
per line of the job's log, then, with ``--follow``, one ``LogEnd``.

The JSON Schemas in ``docs/schemas/`` are generated from these models (``python -m smjobs.cli.schemas docs/schemas``).
A test checks that they are current and that every command's output validates against its schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class Problem(BaseModel):
    """One thing wrong with the input, as the table output lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: str | None
    """The spec field at fault, dotted (``compute.instance_type``), or None for the spec as a whole."""
    message: str
    fix: str | None
    """What to change, or None where the message says it."""


class ErrorOutput(_Out):
    """Printed instead of a command's output when it cannot go on. The exit code is that of the text output: 2 for
    bad input (nothing was sent to AWS), 1 for an AWS error."""

    kind: Literal["error"] = "error"
    ok: Literal[False] = False
    message: str
    """One line: what went wrong."""
    problems: list[Problem] = []
    """Every problem in the spec, when the spec is at fault."""


class CodeArchive(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    files: int
    total_bytes: int
    excluded: int
    """Files left out (``submit --dry-run`` lists them with the reason)."""


class InstanceCount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instance_type: str
    instance_count: int


class ValidateOutput(_Out):
    """``smjobs validate``: the spec is valid; what it resolves to."""

    kind: Literal["validate"] = "validate"
    ok: Literal[True] = True
    name: str
    strategy: str
    """``distribution.type``: ddp, fsdp, smddp, pipeline, naive_split, smp_v1, smp_v2..."""
    launcher: str
    instance_type: str
    """The instance type, after ``auto`` was resolved by the planner."""
    instance_count: int
    instance_preferences: list[InstanceCount]
    """Further choices SageMaker tries in order (``compute.instance_preferences``)."""
    processes_per_host: int
    world_size: int
    image: str
    source_dir: str
    entry_point: str
    hyperparameters: int
    """How many hyperparameters the request carries."""
    code_archive: CodeArchive
    notices: list[str]
    """The notices and warnings the text output prints on stderr."""


class Configuration(BaseModel):
    """One configuration the planner kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instance_type: str
    instance_count: int
    layout: str
    """In words, as the table prints it (``dp 16 shard_grad_op``)."""
    dp_degree: int
    tp_degree: int
    pp_degree: int
    sharding: str
    recompute: str
    micro_batch: int
    memory_gib_per_gpu: float
    """Estimated peak of one GPU, GiB."""
    gpu_memory_gib: float
    step_s: float
    usd_per_hour: float
    hours: float
    job_usd: float


class RejectedType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instance_type: str
    kind: str
    """library, family, region, unpriced, degrees, memory, time, price or bound."""
    reason: str


class PlanOutput(_Out):
    """``smjobs plan``: the cheapest configuration that fits, the alternatives, and why the other types do not."""

    kind: Literal["plan"] = "plan"
    workload: str
    strategy: str
    region: str
    """The region whose prices ranked the configurations."""
    global_batch: int
    steps: int
    choice: Configuration | None
    """The first of ``ranked``, or None when nothing fits (exit code 1)."""
    ranked: list[Configuration]
    """Cheapest job first; costs within 2% go to the faster."""
    rejected: list[RejectedType]
    evaluated: int
    """Configurations the search evaluated."""
    warnings: list[str]
    why_nothing: str | None
    """Why nothing fits, when nothing does."""


class SourceArchive(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    root: str
    total_bytes: int
    total: str
    files: list[str]
    """``path (size)``, ``[added by smjobs]`` for what smjobs adds."""
    excluded: list[str]
    """``path: reason``."""


class DryRunOutput(_Out):
    """``smjobs submit --dry-run``: the request as it would be sent (the YAML output's fields, as JSON)."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    kind: Literal["dry_run"] = "dry_run"
    job_name: str
    region: str
    role_arn: str
    """The execution role, or ``<role>`` until it is resolved at submission."""
    bucket: str
    create_training_job: dict[str, Any]
    """The CreateTrainingJob request, as boto3 sends it."""
    source_archive: SourceArchive


class StatusOutput(_Out):
    """``smjobs status``: one training job (a tuning job's name prints a ``TuneStatusOutput``)."""

    kind: Literal["status"] = "status"
    name: str
    status: str | None
    secondary_status: str | None
    instances: str
    created: str | None
    """ISO 8601, as are ``started`` and ``ended``."""
    started: str | None
    ended: str | None
    billable_s: int | None
    failure_reason: str | None
    model_artifacts: str | None
    """The S3 URI of model.tar.gz, once the job has written it."""
    metrics: dict[str, float]
    """The final value of each metric definition."""


class JobRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    status: str
    created: str | None
    instances: str
    spec: str
    """The spec's name, from the job's smjobs:spec tag."""


class ListOutput(_Out):
    """``smjobs list``: the project's training jobs, newest first."""

    kind: Literal["list"] = "list"
    region: str
    jobs: list[JobRow]


class CostOutput(_Out):
    """``smjobs cost``: billable seconds x instances x the catalog's price."""

    kind: Literal["cost"] = "cost"
    name: str
    status: str
    running: bool
    """The job has not ended: the cost so far."""
    instance_type: str
    instance_count: int
    spot: bool
    usd_per_hour: float | None
    """On-demand price of one instance in the job's region, None when the catalog has none."""
    price_source: str
    training_s: int
    billable_s: int
    usd: float | None
    on_demand_usd: float | None
    spot_savings: float | None
    """1 - billable / training time, for managed spot jobs."""
    estimated_usd_at_submit: float | None


class LogLine(_Out):
    """``smjobs logs``: one line of the job's CloudWatch log."""

    kind: Literal["log"] = "log"
    host: str
    """The log stream's host (``algo-1-1700000000``)."""
    rank: int | None
    """The global rank the line names (torchrun's ``[default3]:``, Open MPI's ``[1,mpirank:3,...]``), else None."""
    message: str
    """The line, without the rank prefix."""


class LogEnd(_Out):
    """The last line of ``smjobs logs --follow``: the job ended."""

    kind: Literal["end"] = "end"
    name: str
    status: str | None
    failure_reason: str | None


class InstanceTypeRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instance_type: str
    gpu_count: int
    gpu_model: str
    gpu_memory_gb: float
    gpu_memory_gib: float
    """As the driver reports it."""
    memory_gib: float
    vcpus: int
    interconnect: str | None
    """Between the GPUs of one instance; None for one GPU."""
    efa: bool
    network_gbps: float
    libraries: list[str]
    """The distributed libraries SageMaker supports on this type."""
    usd_per_hour: float | None


class InstancesOutput(_Out):
    """``smjobs instances``: the GPU instance catalog and its prices in one region."""

    kind: Literal["instances"] = "instances"
    catalog_retrieved: str
    region: str
    instance_types: list[InstanceTypeRow]
    excluded: list[str]


class Trial(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    status: str | None
    objective: float | None
    hyperparameters: dict[str, str]
    instances: str
    seconds: float
    usd: float | None


class TuneStatusOutput(_Out):
    """``smjobs tune-status`` (and ``smjobs status`` given a tuning job's name)."""

    kind: Literal["tune_status"] = "tune_status"
    name: str
    status: str | None
    strategy: str | None
    objective: str
    """``Minimize loss``."""
    counters: dict[str, int]
    trials: list[Trial]
    usd_so_far: float
    best: Trial | None


LogsLine = Annotated[LogLine | LogEnd, Field(discriminator="kind")]

# command -> what its -o json prints (besides ErrorOutput); the schema files' names
SCHEMAS: dict[str, Any] = {
    "validate": ValidateOutput, "plan": PlanOutput, "submit-dry-run": DryRunOutput, "status": StatusOutput,
    "list": ListOutput, "cost": CostOutput, "logs": LogsLine, "instances": InstancesOutput,
    "tune-status": TuneStatusOutput, "error": ErrorOutput,
}


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of ``SCHEMAS[name]``."""
    return TypeAdapter(SCHEMAS[name]).json_schema()


def write_schemas(folder: Path) -> list[Path]:
    """Write ``<command>.schema.json`` for every command into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
