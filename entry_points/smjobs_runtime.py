"""smjobs_runtime: what a training script needs from SageMaker's container, in one file (torch + standard library).

Import it from any training script, yours or smjobs' own::

    import smjobs_runtime as smr

    env = smr.environment()                     # hosts, ranks, channels, model/output/checkpoint dirs
    with smr.reporting_failures(env):           # a failing rank's traceback becomes the job's FailureReason
        device = smr.init_distributed(env)      # NCCL on GPUs, gloo on CPU; nothing when run as one process
        ...
        start = smr.load_latest_checkpoint(model, optimizer, env)   # 0, or the step to resume after
        stop = smr.StopSignal()                                     # SIGTERM: spot interruption, StopTrainingJob
        for step in range(start, steps):
            ...
            smr.log_metrics(env, step=step + 1, loss=loss.item())   # rank 0 only: one line per metric update
            if stop.agreed(device):                                  # every rank stops after the same step
                smr.save_checkpoint(model, optimizer, step + 1, env)
                break
        smr.save_model(env, model.state_dict())

How it reaches the job: ``smjobs submit`` adds this file to the uploaded source archive (the SDK's
``dependencies``) unless the source folder has its own copy; a local run copies it into the code directory
the same way. Nothing is installed in the container. Outside a job (``python train.py``, ``torchrun ...``)
it falls back to ``$SAGEMAKER_BASE_DIR`` or ``./opt_ml`` for the directories.

One file on purpose, though longer than the project's other modules (about 400 lines at most): users copy it
beside their own script, and a single file is what they can copy.

MLflow: with a ``tracking`` section in the spec, ``start_tracking(env, params)`` starts the job's one MLflow run
on rank 0 (or continues the run a checkpoint folder names, after a resume); ``log_metrics``, ``MetricLog`` and
``save_model`` then also log to it, and the run ends with the script (``exit_cleanly``, or FAILED from
``reporting_failures``). Without the section, or without MLflow installed, all of it does nothing and MLflow is
never imported.

Hyperparameters: the container toolkit passes each one as ``--key value`` with ``str(value)``, which turns lists
into Python reprs and dicts into ``k=v,k2=v2``. smjobs sends lists and dicts as JSON text, so the argparse types
here (``json_list``, ``json_dict``, ``boolean``) read every value back exactly as the job spec gave it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

DISTRIBUTION_ENV = "SMJOBS_DISTRIBUTION"
"""The job's distribution settings (JSON), set by smjobs in the job's environment; scripts that want them read
``distribution()``. They are never added to a script's command line."""
CHECKPOINT_DIR_ENV = "SMJOBS_CHECKPOINT_DIR"
"""Set when the job's checkpoint_local_path is not SageMaker's default /opt/ml/checkpoints."""
TRACKING_ENV = "SMJOBS_MLFLOW"
"""The spec's ``tracking.mlflow`` (JSON: tracking_uri, experiment, run_name, artifact_location, parent_run_id),
set by smjobs in the job's environment when the spec has one; ``start_tracking`` reads it."""
TRACKING_RUN_FILE = "mlflow-run.json"
"""In the checkpoint folder: the MLflow run a resumed job continues."""
COMPLETE_MARKER = "COMPLETE"

# ----- hyperparameters -------------------------------------------------------------------------------------
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def boolean(text: str) -> bool:
    """An argparse type: ``True``/``true``/``1``/``yes`` and their opposites (``type=bool`` would read "False" as True)."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def json_value(text: str):
    """An argparse type: any JSON value (list, dict, number, string, bool)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected JSON, got {text!r} ({exc.msg})") from None


def json_list(text: str) -> list:
    """An argparse type: a JSON list, e.g. ``[256, 256]``."""
    value = json_value(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"expected a JSON list, got {text!r}")
    return value


def json_dict(text: str) -> dict:
    """An argparse type: a JSON object, e.g. ``{"name": "adamw", "betas": [0.9, 0.95]}``."""
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _scalar(text: str):
    for parse in (json.loads, boolean):
        try:
            return parse(text)
        except (json.JSONDecodeError, argparse.ArgumentTypeError):
            continue
    return text


def toolkit_mapping(text: str) -> dict:
    """An argparse type for a flat mapping the SDK sent as a JSON object, such as ``mp_parameters``: the container
    toolkit passes it as ``k=v,k2=v2`` (Python str() of each value), which this reads back; JSON text works too."""
    text = text.strip()
    if text.startswith("{"):
        return json_dict(text)
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected k=v,k2=v2 or a JSON object, got {text!r}")
        out[key] = _scalar(value)
    return out


def hyperparameters(environ=None) -> dict:
    """The job's hyperparameters without argparse: SageMaker's ``SM_HPS`` with smjobs' JSON-text lists and dicts
    decoded (``{}`` outside a job)."""
    environ = os.environ if environ is None else environ
    out = {}
    for key, value in json.loads(environ.get("SM_HPS", "{}")).items():
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[key] = value
    return out


def distribution(environ=None) -> dict:
    """The job's distribution settings, e.g. ``{"parallel": "fsdp", "fsdp_sharding": "full_shard", ...}`` ({} if none)."""
    environ = os.environ if environ is None else environ
    return json.loads(environ.get(DISTRIBUTION_ENV) or "{}")


# ----- the container's environment -------------------------------------------------------------------------
@dataclass(frozen=True)
class SageMakerEnv:
    model_dir: Path
    """Where rank 0 saves the final model (uploaded as model.tar.gz)."""
    output_data_dir: Path
    """Other artefacts (metrics, plots), uploaded as output.tar.gz."""
    failure_file: Path
    """SageMaker shows this file's text as the job's FailureReason."""
    checkpoint_dir: Path
    """Synced with the job's checkpoint_s3_uri."""
    channels: dict[str, Path] = field(default_factory=dict)
    """Input channels by name (``SM_CHANNEL_<NAME>``)."""
    num_gpus: int = 0
    hosts: tuple[str, ...] = ("localhost",)
    current_host: str = "localhost"
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints metrics and saves the model."""
        return self.rank == 0


def _base_dir(environ) -> Path:
    if environ.get("SAGEMAKER_BASE_DIR"):
        return Path(environ["SAGEMAKER_BASE_DIR"])
    if Path("/opt/ml").is_dir() and os.access("/opt/ml", os.W_OK):
        return Path("/opt/ml")
    return Path.cwd() / "opt_ml"


def environment(environ=None) -> SageMakerEnv:
    """The job's directories and process coordinates, from SageMaker's ``SM_*`` and torchrun's variables."""
    environ = os.environ if environ is None else environ
    base = _base_dir(environ)
    channels = {
        key[len("SM_CHANNEL_"):].lower(): Path(value)
        for key, value in environ.items()
        if key.startswith("SM_CHANNEL_") and key != "SM_CHANNELS"
    }
    hosts = tuple(json.loads(environ.get("SM_HOSTS", '["localhost"]')))
    return SageMakerEnv(
        model_dir=Path(environ.get("SM_MODEL_DIR", base / "model")),
        output_data_dir=Path(environ.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
        failure_file=Path(environ.get("SM_OUTPUT_DIR", base / "output")) / "failure",
        checkpoint_dir=Path(environ.get(CHECKPOINT_DIR_ENV, base / "checkpoints")),
        channels=channels,
        num_gpus=int(environ.get("SM_NUM_GPUS", "0")),
        hosts=hosts,
        current_host=environ.get("SM_CURRENT_HOST", hosts[0]),
        rank=int(environ.get("RANK", "0")),
        local_rank=int(environ.get("LOCAL_RANK", "0")),
        world_size=int(environ.get("WORLD_SIZE", "1")),
        local_world_size=int(environ.get("LOCAL_WORLD_SIZE", "1")),
    )


PROCESSES_PER_HOST_KEY = "sagemaker_mpi_num_of_processes_per_host"


def check_world_size(env: SageMakerEnv, environ=None) -> None:
    """Fail loudly when fewer (or more) processes started than the job declares: hosts x processes per host (the
    job's hyperparameters.json). A trial of a tuning job that silently ran on one GPU would report the objective
    of another job. Nothing is checked outside the container contract (no hyperparameters.json)."""
    environ = os.environ if environ is None else environ
    config = Path(environ.get("SM_INPUT_CONFIG_DIR", _base_dir(environ) / "input" / "config")) / "hyperparameters.json"
    try:
        declared = json.loads(config.read_text()).get(PROCESSES_PER_HOST_KEY)
        per_host = int(json.loads(declared) if isinstance(declared, str) else declared)
    except (OSError, ValueError, TypeError):
        return
    started = int(environ.get("WORLD_SIZE") or environ.get("OMPI_COMM_WORLD_SIZE") or environ.get("PMI_SIZE") or 1)
    expected = per_host * len(env.hosts)
    if started != expected:
        raise RuntimeError(f"{started} process(es) started, but the job declares {len(env.hosts)} host(s) x {per_host} "
                           f"processes per host = {expected}: the launcher did not start the job as specified (check "
                           "the distribution settings and the SDK version). Stopping rather than training, and "
                           "reporting metrics, as another job.")


def init_distributed(env: SageMakerEnv, backend: str = "auto", timeout_s: float = 300):
    """The process's device (its GPU, else the CPU); joins the process group when there is more than one process.
    ``backend``: auto (NCCL on GPUs, gloo on CPU), nccl, gloo or smddp (SageMaker's data parallel library). First
    checks that the job started as many processes as it declares (``check_world_size``)."""
    import torch
    import torch.distributed as dist

    check_world_size(env)

    if torch.cuda.is_available():
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if env.distributed and not dist.is_initialized():
        if backend == "smddp":
            import smdistributed.dataparallel.torch.torch_smddp  # noqa: F401  registers the backend
        elif backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return device


# ----- stopping and checkpoints ----------------------------------------------------------------------------
class StopSignal:
    """Remembers a SIGTERM (spot interruption, StopTrainingJob, Ctrl-C in a local run) instead of dying mid-step.

    A second one ends the process at once: launchers (torchrun, mpirun) send SIGTERM to the ranks left when one
    rank failed, and a rank blocked in a collective with the dead one would otherwise never get to stop."""

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signal: int | None = None
        for sig in signals:
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.signal is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signal = signum

    @property
    def requested(self) -> bool:
        """This process was asked to stop."""
        return self.signal is not None

    def agreed(self, device=None) -> bool:
        """Whether any process was asked to stop: one small all-reduce, so every rank stops after the same step
        (a checkpoint is collective). Call it at the same point of every step on every rank."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag)
        return flag.item() > 0


def _rank_local_optimizer() -> str | None:
    """The key of this rank's own optimizer state when it cannot go through FSDP's conversion, else None.

    Under smdistributed-stub's torch.sagemaker with tensor parallelism, torch's FSDP1 wraps DTensor slices and
    converts their sharded optimizer state wrongly on load (the stand-in refuses it). Each rank then keeps its own
    optimizer state, as SMP's local checkpoints do; a resume needs the same layout, which the checkpoint's record
    of the shaping hyperparameters holds it to."""
    tsm = sys.modules.get("torch.sagemaker")
    if getattr(tsm, "__stub__", False) and tsm.is_initialized() and tsm.state.tp_size > 1:
        import torch.distributed as dist

        return f"optim_rank{dist.get_rank()}"
    return None


def _train_state(model, optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    local = _rank_local_optimizer()
    if local:
        return {"model": get_model_state_dict(model), local: optimizer.state_dict()}
    model_state, optim_state = get_state_dict(model, optimizer)
    return {"model": model_state, "optim": optim_state}


def _restore(model, optimizer, loaded: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    local = _rank_local_optimizer()
    if local:
        set_model_state_dict(model, loaded["model"])
        optimizer.load_state_dict(loaded[local])
    else:
        set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"])


CONFIG_FILE = "config.json"
"""Beside each checkpoint: the step, the script's hyperparameters and which of them shape the model."""


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved or resumed (torch's CheckpointException derives from BaseException, which
    failure reports and ``except Exception`` would miss)."""


class CheckpointMismatch(ValueError):
    """The newest checkpoint was saved with other model-shaping hyperparameters than this run has."""


def _reason(exc: BaseException) -> str:
    """One line: the exception's type and text; for torch's CheckpointException, each failing rank's own error
    (its text is a traceback per rank, which would bury the cause)."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        return "; ".join(f"rank {rank}: {_reason(wrapped[0])}" for rank, wrapped in sorted(failures.items()))
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


FULL_BELOW_BYTES = 64 * 2**20
"""Free space under which a failed write is blamed on a full disk (torch's zip writer reports ENOSPC as
"unexpected pos", so the error text alone does not say it)."""


def _room(folder: Path) -> str:
    """What the free space of ``folder``'s file system says about a write that failed there."""
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    if free < FULL_BELOW_BYTES:
        return f"the disk is full ({free / 2**20:,.1f} MiB free there): free space or use another folder"
    return f"{free / 2**20:,.0f} MiB are free there, so the folder may be read-only or the file too large"


def checkpoints(env: SageMakerEnv) -> list[Path]:
    """Checkpoints marked complete, oldest first (an interrupted save has no marker and is ignored)."""
    return sorted(p for p in env.checkpoint_dir.glob("step_*") if (p / COMPLETE_MARKER).exists())


def latest_checkpoint(env: SageMakerEnv) -> Path | None:
    """The newest checkpoint marked complete, or None."""
    done = checkpoints(env)
    return done[-1] if done else None


def checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix("step_"))


CHECKPOINT_KEEP = 3
"""Checkpoints a save keeps by default: the newest 3, plus the newest complete one if those are not."""


def prune_checkpoints(env: SageMakerEnv, keep: int = CHECKPOINT_KEEP) -> list[Path]:
    """Delete all checkpoints but the newest ``keep`` and the newest complete one (0: keep every one); return the
    deleted folders. Local rank 0 of each host prunes its own folder: on SageMaker each host has its own."""
    if keep <= 0 or env.local_rank != 0:
        return []
    saved = sorted(env.checkpoint_dir.glob("step_*"))  # zero-padded steps: by name is by step
    kept = set(saved[-keep:])
    complete = [path for path in saved if (path / COMPLETE_MARKER).exists()]
    kept.update(complete[-1:])
    removed = [path for path in saved if path not in kept]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def save_checkpoint(model, optimizer, step: int, env: SageMakerEnv, extra: dict | None = None,
                    hyperparameters: dict | None = None, shaping=(), keep: int = CHECKPOINT_KEEP) -> Path:
    """Save model and optimizer (plain, DDP, FSDP-sharded or a pipeline rank's stages) with
    torch.distributed.checkpoint; collective. ``hyperparameters`` (the script's arguments) and ``shaping`` (the
    names among them that shape the model or the optimizer's state) are kept beside it, so that a resume with other
    values is refused instead of crashing on a shape mismatch. Then older checkpoints are pruned to ``keep``
    (``prune_checkpoints``; 0 keeps every one)."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    path = env.checkpoint_dir / f"step_{step:08d}"
    try:
        # dcp.save returns on rank 0 after every rank's shards and the metadata are written
        dcp.save({**_train_state(model, optimizer), "step": torch.tensor(step), **(extra or {})}, checkpoint_id=str(path))
    except (Exception, CheckpointException) as exc:
        raise CheckpointError(f"saving the checkpoint of step {step} to {path} failed ({_reason(exc)}); "
                              f"{_room(env.checkpoint_dir)}; the checkpoint is left incomplete and a resume skips it") from exc
    if env.rank == 0:
        config = {"step": step, "hyperparameters": hyperparameters or {}, "shaping": sorted(shaping)}
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=1, default=str))
        (path / COMPLETE_MARKER).touch()
    prune_checkpoints(env, keep)  # after the marker: the newest complete one is this one
    return path


def shaping_differences(path: Path, hyperparameters: dict) -> list[str]:
    """``name: checkpoint value -> this run's value`` for each model-shaping hyperparameter that changed since the
    checkpoint at ``path`` was saved (none when it has no record)."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return []
    saved = config.get("hyperparameters", {})
    now = json.loads(json.dumps(hyperparameters, default=str))
    return [f"{name}: {saved[name]!r} -> {now[name]!r}" for name in config.get("shaping", [])
            if name in saved and name in now and saved[name] != now[name]]


def _say(env: SageMakerEnv, text: str) -> None:
    if env.rank == 0:
        print(text, flush=True)


def load_latest_checkpoint(model, optimizer, env: SageMakerEnv, extra: dict | None = None,
                           hyperparameters: dict | None = None) -> int:
    """Load the newest usable checkpoint into ``model`` and ``optimizer`` in place; return its step (0: none).

    A checkpoint that cannot be read (a truncated shard, missing or garbage metadata) is skipped with its reason
    printed, and the one before it is tried. The optimizer keeps this run's hyperparameters (a changed ``lr``
    applies from the resumed step) and takes its state from the checkpoint. Raises CheckpointMismatch when the
    newest checkpoint was saved with other model-shaping ``hyperparameters``, and CheckpointError when checkpoints
    exist but none can be read (training from scratch silently would discard them)."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    done = checkpoints(env)
    if not done:
        return 0
    changed = shaping_differences(done[-1], hyperparameters or {})
    if changed:
        raise CheckpointMismatch(
            f"checkpoint {done[-1]} was saved with other model-shaping hyperparameters ({'; '.join(changed)}). "
            "To fix: run with the checkpoint's values to resume, or start over with --fresh (deletes the checkpoints)")
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    skipped = []
    if _rank_local_optimizer():  # the optimizer state's keys, for the load to fill (SMP's own helper)
        from torch.sagemaker.distributed.checkpoint.state_dict_utils import init_optim_state

        init_optim_state(optimizer, skip_empty_param=True)
    for path in reversed(done):
        loaded = {**_train_state(model, optimizer), "step": torch.tensor(0), **(extra or {})}
        try:
            if not (path / ".metadata").is_file():
                raise FileNotFoundError("its .metadata file is missing")
            dcp.load(loaded, checkpoint_id=str(path))  # collective: a rank that cannot read makes every rank raise
        except (Exception, CheckpointException) as exc:
            skipped.append(f"{path.name} ({_reason(exc)})")
            _say(env, f"checkpoint {path.name} skipped: cannot be read: {_reason(exc)}")
            continue
        _restore(model, optimizer, loaded)
        for group, own in zip(optimizer.param_groups, settings, strict=True):
            group.update(own)
        step = int(loaded["step"])
        _say(env, f"resuming from checkpoint {path.name} (step {step})" + (f"; skipped {len(skipped)} newer" if skipped else ""))
        return step
    raise CheckpointError(f"none of the {len(done)} checkpoints in {env.checkpoint_dir} can be read: {'; '.join(skipped)}. "
                          "To fix: start over with --fresh (deletes them)")


STOPPED_LINE = "checkpoint at step {step} saved; stopping on SIGTERM; run again to resume"
"""What a script stopped by SIGTERM prints last (rank 0); the local runner's summary reads it."""


def report_stop(env: SageMakerEnv, step: int) -> None:
    """Say, on rank 0, that the run stopped on request after saving the checkpoint of ``step``."""
    _say(env, STOPPED_LINE.format(step=step))
    _TRACKING.end("KILLED")  # a resumed job continues the same run


# ----- MLflow ----------------------------------------------------------------------------------------------
class _Tracking:
    """The job's MLflow run on rank 0 (``start_tracking``); every method does nothing when there is none."""

    def __init__(self) -> None:
        self.run = None
        self.client = None

    def metrics(self, values: dict, step: int | None) -> None:
        if self.run is None:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self.client.log_batch(self.run, metrics=[Metric(k, float(v), timestamp, step or 0)
                                                 for k, v in values.items() if isinstance(v, (int, float))])

    def artifact(self, path: Path, folder: str) -> None:
        if self.run is not None:
            self.client.log_artifact(self.run, str(path), folder)

    def end(self, status: str) -> None:
        if self.run is not None:
            self.client.set_terminated(self.run, status)
            self.run = None


_TRACKING = _Tracking()


def start_tracking(env: SageMakerEnv, params: dict | None = None, environ=None):
    """Start the job's MLflow run on rank 0, or continue the one this job's checkpoint folder names (a resumed
    job), and log ``params``; the run's id, or None where there is nothing to do: another rank, no ``tracking``
    section in the spec, or MLflow not installed (said once on rank 0). One run per job, whatever its ranks and
    hosts; a tuning trial's run is a child of the tuning job's run (``parent_run_id``)."""
    environ = os.environ if environ is None else environ
    if env.rank != 0 or not environ.get(TRACKING_ENV):
        return None
    config = json.loads(environ[TRACKING_ENV])
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        print("tracking: MLflow is not installed in this environment (pip install mlflow-skinny); not tracked",
              flush=True)
        return None
    client = MlflowClient(tracking_uri=config.get("tracking_uri"))
    name = config.get("experiment") or "Default"
    experiment = client.get_experiment_by_name(name)
    experiment_id = (experiment.experiment_id if experiment is not None
                     else client.create_experiment(name, artifact_location=config.get("artifact_location")))
    record = env.checkpoint_dir / TRACKING_RUN_FILE
    run_id = json.loads(record.read_text()).get("run_id") if record.is_file() else None
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
    else:
        tags = {"mlflow.parentRunId": config["parent_run_id"]} if config.get("parent_run_id") else {}
        # a tuning trial's settings name no run: it takes its own training job's name, which SageMaker sets
        run_name = config.get("run_name") or environ.get("TRAINING_JOB_NAME")
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"run_id": run_id, "tracking_uri": config.get("tracking_uri")}))
    _TRACKING.run, _TRACKING.client = run_id, client
    if params:
        logged = client.get_run(run_id).data.params
        from mlflow.entities import Param

        fresh = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in logged]  # a param is logged once
        for start in range(0, len(fresh), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(run_id, params=fresh[start:start + 100])
    print(f"tracking: MLflow run {run_id} in experiment {name!r}", flush=True)
    return run_id


# ----- metrics, model, failures ----------------------------------------------------------------------------
def log_metrics(env: SageMakerEnv, **values) -> None:
    """Print ``key=value`` pairs on one line on rank 0 only: what the job's metric definitions match (one line
    per update, so SageMaker and hyperparameter tuning see each value once, not once per rank)."""
    if env.rank != 0:
        return
    parts = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()]
    print(" ".join(parts), flush=True)
    if _TRACKING.run is not None:
        step = values.get("step")
        _TRACKING.metrics({k: v for k, v in values.items() if k != "step"}, step if isinstance(step, int) else None)


class MetricLog:
    """Prints ``step=N loss=X samples_per_s=Y`` every ``log_every`` steps and at the last; samples/s is measured
    over the steps since the previous line, so start-up does not blur steady-state throughput."""

    def __init__(self, total_steps: int, log_every: int, batch_size: int, enabled: bool = True):
        self.total_steps, self.log_every, self.batch_size, self.enabled = total_steps, log_every, batch_size, enabled
        self.t0, self.seen = time.perf_counter(), 0

    def step(self, done: int, loss: float) -> None:
        """Record that step ``done`` (1-based) finished with ``loss``."""
        self.seen += self.batch_size
        if self.enabled and (done % self.log_every == 0 or done == self.total_steps):
            now = time.perf_counter()
            rate = self.seen / (now - self.t0)
            print(f"step={done} loss={loss:.6f} samples_per_s={rate:.1f}", flush=True)
            self.t0, self.seen = now, 0
            _TRACKING.metrics({"loss": loss, "samples_per_s": rate}, done)


def save_model(env: SageMakerEnv, payload, name: str = "model.pt") -> Path:
    """Write the model where SageMaker packs model.tar.gz from (call on one rank)."""
    import torch

    env.model_dir.mkdir(parents=True, exist_ok=True)
    path = env.model_dir / name
    partial = path.with_name(f".{name}.partial")
    try:
        torch.save(payload, partial)
        os.replace(partial, path)  # a model file is whole or absent: a failed write never leaves a truncated one
    except (OSError, RuntimeError) as exc:
        partial.unlink(missing_ok=True)
        raise OSError(f"writing the model to {path} failed ({_reason(exc)}); {_room(env.model_dir)}") from exc
    print(f"saved model to {path}", flush=True)
    _TRACKING.artifact(path, "model")
    return path


@contextlib.contextmanager
def reporting_failures(env: SageMakerEnv, exit_at_once: bool = True):
    """Around a training script's work: on an error, append its traceback to SageMaker's failure file (shown
    as the job's FailureReason); in every case, tear the process group down.

    ``exit_at_once``: a failed rank prints its traceback and exits with code 1 right away, without the interpreter's
    finalization (most of a second with torch loaded, and where gloo aborts now and then): the launcher notices
    the failure sooner and stops the other ranks, so a failed job ends within seconds. False: the error is raised."""
    try:
        yield
    except Exception:
        env.failure_file.parent.mkdir(parents=True, exist_ok=True)
        with env.failure_file.open("a") as f:
            f.write(f"rank {env.rank}: {traceback.format_exc(limit=5)}")
        _TRACKING.end("FAILED")
        if not exit_at_once:
            raise
        traceback.print_exc()
        _end_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    finally:
        _end_process_group()


def _end_process_group() -> None:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        # give gloo's worker threads a moment, while the interpreter still runs, to release the collectives they
        # finished: one released during finalisation aborts the process ("terminate called without an active
        # exception") after training succeeded (root cause found with gdb; see smdistributed-stub's _launch.py)
        time.sleep(0.2)


def exit_cleanly() -> None:
    """End a successful run without Python's interpreter finalization.

    At finalization, process-group objects still referenced by modules (device meshes, pipeline stages, FSDP
    state) are destroyed while gloo's C++ worker threads may still hold work items; now and then that aborts
    the process with SIGABRT ("terminate called without an active exception", see pytorch/pytorch#179291)
    after training succeeded. Call it last, after the outputs are written and the process group is destroyed.
    """
    _TRACKING.end("FINISHED")
    sys.stdout.flush()
    sys.stderr.flush()
    # launched by mpirun (SMDDP, SMP v1), whose library loaded mpi4py: MPI must be finalised, or mpirun reports the
    # rank as exiting improperly and fails the job
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()
    os._exit(0)
