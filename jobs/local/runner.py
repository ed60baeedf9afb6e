"""Run a TrainingRequest on this machine under the SageMaker container contract, without Docker.

The request that would be submitted is laid out as the ``/opt/ml`` tree SageMaker builds inside the
container (config JSON files, channel directories, model/output/checkpoint directories) in a work
directory, and started by SageMaker's own container toolkit from PyPI (``sagemaker-training`` with
``sagemaker-pytorch-training``): the ``SM_*`` environment and the torchrun command line are the ones
SageMaker produces. What differs, and why:
- one host instead of ``instance_count``: ``--processes`` processes stand in for the whole cluster, with the
  same global batch;
- the code is the archive's files (``smjobs.request.source``: the source folder, filtered, plus smjobs_runtime.py) copied
  into ``code/`` instead of downloaded, and channels are local directories;
- code with a ``requirements.txt`` or ``setup.py`` runs in an isolated environment (``smjobs.local.env``): the
  toolkit's pip install never touches smjobs' own environment;
- ``SM_STUDIO_LOCAL_MODE=true`` skips the toolkit's wait for other hosts' DNS names;
- SMDDP and SMP v1 jobs (mpirun on SageMaker) start under torchrun unless this machine has what the toolkit's
  MPI runner needs (Open MPI, mpi4py, an SSH daemon, the host name algo-1: a SageMaker-like container), and
  import smjobs' smdistributed-stub instead of SageMaker's libraries.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smjobs.errors import Problem, SpecError
from smjobs.local import env as local_env
from smjobs.local import failures
from smjobs.local import prechecks as local_checks
from smjobs.local import stop as local_stop
from smjobs.local.mpi import (  # noqa: F401
    HOST,
    launcher,
    mpi_runner_missing,
    torchrun_instead_of_mpi,
    uses_smdistributed,
    uses_smp_v2,
)
from smjobs.local.stop import interrupt
from smjobs.request import manifests, source
from smjobs.request.training import TrainingRequest
from smjobs.spec.job import ENTRY_POINTS_DIR

from smjobs_runtime import CHECKPOINT_DIR_ENV, TRACKING_ENV

INSTANCE_GROUP = "homogeneousCluster"
log = logging.getLogger(__name__)
TOOLKIT_MODULE = "sagemaker_pytorch_container.training:main"
STOPPED = re.compile(r"checkpoint at step (\d+) saved; stopping")
"""smjobs_runtime.STOPPED_LINE, as a stopped script prints it."""


@dataclass(frozen=True)
class LocalLayout:
    """Paths of one local run's ``/opt/ml`` tree."""

    base_dir: Path

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "input" / "data"

    @property
    def code_dir(self) -> Path:
        return self.base_dir / "code"

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / "checkpoints"


def local_problems(request: TrainingRequest, processes: int) -> list[Problem]:
    """What keeps a request from running locally, known without touching the work dir."""
    problems = local_checks.degree_problems(request, processes) + local_checks.channel_problems(request)
    import importlib.util

    if uses_smdistributed(request) and importlib.util.find_spec("smdistributed") is None:
        problems.append(Problem("distribution.type", "SMDDP and SMP v1 scripts import smdistributed, which exists only in "
                                "SageMaker's GPU images and is not installed here.",
                                "install smjobs' local stand-in: pip install stubs/smdistributed-stub (make demo and "
                                "make test do), or run the job on SageMaker."))
    bundled = Path(request.estimator.get("source_dir") or "").resolve() == ENTRY_POINTS_DIR  # train.py falls back to FSDP2
    # the stand-in's finder, without importing torch to look for torch.sagemaker
    if uses_smp_v2(request) and not bundled and importlib.util.find_spec("_smdistributed_stub_hook") is None:
        problems.append(Problem("distribution.type", "SMP v2 scripts import torch.sagemaker, which exists only in SageMaker's "
                                "pytorch-smp images and is not installed here.",
                                "install smjobs' local stand-in: pip install stubs/smdistributed-stub (make demo and "
                                "make test do), or run the job on SageMaker."))
    return problems


def container_files(request: TrainingRequest, processes: int, code_dir: Path) -> dict[str, dict]:
    """The config files SageMaker writes to ``/opt/ml/input/config`` for this request, on one host.

    Hyperparameters are the request's own JSON-encoded strings, as SageMaker copies them; two entries
    are pointed at this machine: the code (already in ``code_dir``, which the toolkit then uses as it is) and the
    number of processes.
    """
    ctj = request.create_training_job
    hyperparameters = dict(ctj["HyperParameters"])
    hyperparameters["sagemaker_submit_directory"] = json.dumps(str(code_dir))
    hyperparameters["sagemaker_mpi_num_of_processes_per_host"] = json.dumps(processes)
    if uses_smdistributed(request) and mpi_runner_missing():
        hyperparameters = torchrun_instead_of_mpi(hyperparameters)
    instance_type = request.estimator["instance_type"]  # the first preference when the service may pick one
    resource = {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": INSTANCE_GROUP, "instance_type": instance_type, "hosts": [HOST]}],
        "network_interface_name": "lo",
    }
    data_config = {}
    for channel in ctj.get("InputDataConfig", []):
        if channel["ChannelName"] == "code":
            continue  # network isolation's code channel: the code comes from source_dir here
        s3 = channel["DataSource"]["S3DataSource"]
        entry = {
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": s3["S3DataDistributionType"],
            "RecordWrapperType": "None",
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        data_config[channel["ChannelName"]] = entry
    return {"hyperparameters.json": hyperparameters, "resourceconfig.json": resource, "inputdataconfig.json": data_config}


class FinishedBefore(Exception):  # noqa: N818  (not an error: the run has nothing to do)
    """The work dir holds a run that finished with the same entry point and hyperparameters, its model intact."""

    def __init__(self, layout: LocalLayout, record: dict):
        super().__init__(f"{layout.base_dir} already holds this run, finished {record.get('finished', '')}")
        self.layout, self.record = layout, record


def prepare(request: TrainingRequest, work_dir: Path, processes: int, *, fresh: bool = False,
            memory: local_checks.MemoryCheck | None = None, rerun_finished: bool = True) -> LocalLayout:
    """Lay out the ``/opt/ml`` tree for ``request`` under ``work_dir`` (kept between runs: checkpoints resume) and
    take the work dir's lock, which ``launch`` releases. Raises SpecError, with the work dir as it was, when the run
    cannot work here. ``fresh``: delete the checkpoints, model and output first. ``memory``: the job's memory
    estimate over ``processes`` (``local_checks.estimate_memory``), checked against this machine.
    ``rerun_finished`` False: raise FinishedBefore, changing nothing, when the work dir holds this run finished."""
    layout = LocalLayout(Path(work_dir).resolve())
    problems = local_problems(request, processes) + local_checks.memory_problems(memory)
    if problems:
        raise SpecError(problems)  # before the work dir is touched
    folders = {"model": layout.model_dir, "output": layout.output_dir / "data", "checkpoint": layout.checkpoint_dir}
    created = local_checks.CreatedPaths(layout.base_dir / local_checks.LOCK_FILE, *folders.values())
    held = local_checks.lock(layout.base_dir)
    if held is not None:
        created.remove()
        raise SpecError([held])
    try:
        if not fresh and not rerun_finished:
            record = local_checks.finished_before(request, layout.output_dir, layout.model_dir)
            if record is not None:
                raise FinishedBefore(layout, record)
        problems = local_checks.folder_problems(folders, memory.storage_bytes if memory else local_checks.MIN_FREE_BYTES)
        if not problems and fresh:
            for sub in (layout.checkpoint_dir, layout.model_dir, layout.output_dir):
                shutil.rmtree(sub, ignore_errors=True)
        problems += local_checks.resume_problems(request, layout.checkpoint_dir)
        if problems:
            raise SpecError(problems)
        _lay_out(request, layout, processes)
    except BaseException:
        local_checks.unlock(layout.base_dir)
        created.remove()
        raise
    return layout


def _lay_out(request: TrainingRequest, layout: LocalLayout, processes: int) -> None:
    layout.config_dir.mkdir(parents=True, exist_ok=True)
    for name, content in container_files(request, processes, layout.code_dir).items():
        (layout.config_dir / name).write_text(json.dumps(content, indent=1))
    if layout.data_dir.exists():
        shutil.rmtree(layout.data_dir)
    layout.data_dir.mkdir(parents=True)
    for name, channel in request.inputs.items():
        if manifests.is_manifest(channel["uri"]):
            manifests.materialize(channel["uri"], layout.data_dir / name)  # the files SageMaker would download
            continue
        origin = Path(channel["uri"]).expanduser().resolve()
        if origin.is_file():  # a channel of one file: the folder SageMaker makes holds just it
            (layout.data_dir / name).mkdir()
            (layout.data_dir / name / origin.name).symlink_to(origin)
            continue
        (layout.data_dir / name).symlink_to(Path(channel["uri"]).expanduser().resolve(), target_is_directory=True)
    # Every SageMaker container starts with the archive's files and nothing else: code/ is laid anew each run, or a
    # re-run would see the previous run's copy of an edited script.
    source.stage(source.manifest_for(request, work_dir=layout.base_dir), layout.code_dir)
    for path in (layout.model_dir, layout.output_dir / "data", layout.checkpoint_dir):
        path.mkdir(parents=True, exist_ok=True)
    layout.failure_file.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toolkit_environment(layout: LocalLayout, extra: dict[str, str] | None = None, bin_dir: Path | None = None) -> dict[str, str]:
    """The toolkit's environment: this machine's, less any job's leftovers, plus the container's variables.
    ``bin_dir``: first on PATH, holding the ``torchrun`` the toolkit starts (default: smjobs' Python's folder)."""
    bin_dir = str(bin_dir or Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "PET_")) and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        SAGEMAKER_BASE_DIR=str(layout.base_dir),
        SM_STUDIO_LOCAL_MODE="true",
        SAGEMAKER_TRAINING_MODULE=TOOLKIT_MODULE,
        PET_TEE="3",  # torchrun's --tee: every line prefixed with its rank
        # torchrun's --master_port: a free one, so that runs back to back (or side by side) never meet
        # another run's rendezvous on the default 29500
        PET_MASTER_ADDR="127.0.0.1",
        PET_MASTER_PORT=str(free_port()),
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),  # the toolkit runs `torchrun` from PATH
        PYTHONUNBUFFERED="1",
        # every process of the run (toolkit, torchrun, the ranks) lets gloo settle at exit: see local_env.SETTLE
        PYTHONPATH=os.pathsep.join(filter(None, [str(local_env.write_settle_hook(layout.base_dir / "site")),
                                                 env.get("PYTHONPATH")])),
    )
    env.update(extra or {})
    return env


@dataclass
class RunResult:
    exit_code: int
    layout: LocalLayout
    lines: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    """Last value of each metric definition found in the log."""
    duration_s: float = 0.0
    root_cause: failures.RootCause | None = None
    """The rank that failed first and how (torchrun's summary), when the run failed."""
    stop_requested: bool = False
    """The run was asked to stop (Ctrl-C, SIGTERM, ``interrupt``, the timeout)."""
    stopped_at_step: int | None = None
    """The step whose checkpoint the ranks saved when they stopped on SIGTERM."""
    stop_signal: int | None = None
    """The signal (SIGINT, SIGTERM) that stopped the run, when one did."""
    finished_before: dict | None = None
    """Nothing ran: the work dir held this run, finished (``prechecks.finished_before``'s record)."""
    tracking_uri: str | None = None
    """The MLflow store the run logged to (``tracking.mlflow``): ``MlflowClient(tracking_uri)`` reads it back."""

    @property
    def stopped(self) -> bool:
        """Ended on request rather than by finishing or failing."""
        return self.stopped_at_step is not None or (self.stop_requested and self.exit_code != 0)

    @property
    def status(self) -> str:
        if self.finished_before is not None:
            return f"already trained (finished {self.finished_before.get('finished', '')}); --fresh trains again"
        if self.stopped:
            by = f"stopped by {signal.Signals(self.stop_signal).name}" if self.stop_signal else "stopped"
            return (f"{by}: checkpoint at step {self.stopped_at_step} saved; run again to resume"
                    if self.stopped_at_step is not None else f"{by} before the first checkpoint; nothing to resume")
        return "succeeded" if self.exit_code == 0 else f"failed (exit code {self.exit_code})"

    @property
    def shell_exit_code(self) -> int:
        """The command's exit code: the run's own, or for a stopped run 128 + the signal that stopped it (130 for
        Ctrl-C, 143 for SIGTERM), as a shell reports it; 130 for a stop without a signal (the timeout)."""
        if self.stopped:
            return 128 + (self.stop_signal or 2)
        return self.exit_code

    @property
    def failure(self) -> str | None:
        path = self.layout.failure_file
        return path.read_text() if path.exists() else None


def launch(
    request: TrainingRequest,
    layout: LocalLayout,
    *,
    on_line: Callable[[str], None] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Start the container toolkit on ``layout``, stream its log, and return when every process has ended."""
    python = python_for(request, layout)
    # the toolkit runs `torchrun` from PATH: give it one that runs under the same Python, wherever torch's scripts
    # were installed (a --user install, a conda env, an isolated environment)
    bin_dir = local_env.write_torchrun(layout.base_dir / "bin", python)
    cmd = [str(python), str(local_env.write_toolkit_entry(bin_dir, python))]
    # the job's own environment variables (its strategy settings among them), as the container has them; the
    # checkpoint folder is this run's
    job_env = {**request.create_training_job.get("Environment", {}), CHECKPOINT_DIR_ENV: str(layout.checkpoint_dir)}
    if TRACKING_ENV in job_env:
        job_env[TRACKING_ENV] = local_tracking(job_env[TRACKING_ENV], layout)
    start = time.monotonic()
    result = RunResult(exit_code=-1, layout=layout)
    settings = (env or {}).get(TRACKING_ENV) or job_env.get(TRACKING_ENV)
    result.tracking_uri = json.loads(settings)["tracking_uri"] if settings else None
    oom_before = failures.oom_kills()
    watch = local_stop.StopWatch()  # before the toolkit starts: a stop at any moment stops the run
    proc = None
    try:
        log.info("starting the container toolkit in %s: %s", layout.base_dir, " ".join(cmd))
        proc = subprocess.Popen(cmd, cwd=layout.base_dir, env=toolkit_environment(layout, {**job_env, **(env or {})}, bin_dir),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)
        watch.attach(proc)
        if on_start:
            on_start(proc)
        assert proc.stdout is not None  # noqa: S101  (Popen with stdout=PIPE always has it)
        for line in proc.stdout:
            line = line.rstrip("\n")
            result.lines.append(line)
            if on_line:
                on_line(line)
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                interrupt(proc)
        result.exit_code = proc.wait()
    finally:
        if watch.run is not None:
            result.stop_requested = watch.run.stop_requested_at is not None
            result.stop_signal = watch.signal
            watch.run.end()
        elif proc is not None:
            proc.kill()
            proc.wait()
        watch.close()
        local_checks.unlock(layout.base_dir)
    result.duration_s = time.monotonic() - start
    log.info("the toolkit exited with code %d after %.1f s", result.exit_code, result.duration_s)
    if result.exit_code == 0 and not result.stop_requested:
        local_checks.record_finished(request, layout.output_dir, layout.model_dir, result.duration_s)
    result.metrics = parse_metrics(result.lines, request.estimator.get("metric_definitions", []))
    stopped = [int(m.group(1)) for m in map(STOPPED.search, result.lines) if m]
    result.stopped_at_step = stopped[-1] if stopped else None
    if result.stopped and result.stopped_at_step is None:
        cause = failures.root_cause(result.lines)
        if cause is None or cause.exit_code < 0:
            # the ranks (or the toolkit) ended by the stop's own signal: the toolkit's ExecuteUserScriptError and
            # the peers' broken connections are the stop, not a failure, and would contradict "stopped"
            layout.failure_file.unlink(missing_ok=True)
    if result.exit_code != 0 and not result.stopped:
        result.root_cause = failures.root_cause(result.lines)
        if result.root_cause is not None:  # the first failure goes first: the ranks that failed after it wrote theirs
            earlier = layout.failure_file.read_text() if layout.failure_file.exists() else ""
            layout.failure_file.parent.mkdir(parents=True, exist_ok=True)
            oom = failures.oom_killed_since(oom_before)
            layout.failure_file.write_text(failures.describe(result.root_cause, result.lines, oom_killed=oom) + earlier)
    return result


def local_tracking(settings: str, layout: LocalLayout) -> str:
    """The job's MLflow settings for a run here: its own tracking URI when it has one that is not SageMaker's (a
    local run calls no AWS API), else a SQLite store beside the run's folders, with the artifacts under it."""
    config = json.loads(settings)
    uri = config.get("tracking_uri")
    if not uri or uri.startswith("arn:"):
        config["tracking_uri"] = local_tracking_uri(layout.base_dir)
        config["artifact_location"] = (layout.base_dir / "mlartifacts").resolve().as_uri()
        if uri:
            log.warning("tracking: a local run logs to %s, not to SageMaker's MLflow %s", config["tracking_uri"], uri)
    return json.dumps(config, separators=(",", ":"))


def local_tracking_uri(work_dir: Path) -> str:
    """The SQLite MLflow store of a local run in ``work_dir`` (what ``mlflow ui --backend-store-uri`` takes)."""
    return f"sqlite:///{(Path(work_dir) / 'mlflow.db').resolve()}"


def python_for(request: TrainingRequest, layout: LocalLayout) -> Path:
    """The Python that runs the toolkit and the training: smjobs' own, or for code that installs packages
    (requirements.txt, setup.py) the isolated environment of its source folder."""
    if local_env.installs_packages(layout.code_dir):
        return local_env.isolated_environment(Path(request.source_dir))
    return Path(sys.executable)


def parse_metrics(lines: list[str], definitions: list[dict]) -> dict[str, float]:
    """Apply the job's metric definitions to its log the way SageMaker does: the last match wins."""
    metrics = {}
    for definition in definitions:
        pattern = re.compile(definition["Regex"])
        for line in lines:
            for match in pattern.finditer(line):
                try:
                    metrics[definition["Name"]] = float(match.group(1))
                except ValueError:
                    continue
    return metrics


def default_processes(request: TrainingRequest) -> int:
    """Data parallel: the job's per-host count, at most the CPUs. Model parallel: the whole job's world size,
    since its degrees are fixed (a small model runs fine with more processes than cores)."""
    if request.strategy_settings.get("parallel") in ("pipeline", "naive_mp", "smp_v2", "smp_v1"):
        return request.world_size
    return max(1, min(request.processes_per_host, os.cpu_count() or 1))
