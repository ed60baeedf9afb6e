"""What is checked before a local run starts any process, so that a run that cannot succeed fails in a second, not
after minutes of training: one run per work dir at a time, writable folders with room, non-empty channels, parallel
degrees that fit the local process count, a memory estimate that fits this machine, and a checkpoint that the run
can resume. Each check returns problems (field path, what is wrong, the fix) for the caller to raise at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from smjobs.errors import Problem
from smjobs.request import manifests
from smjobs.request.training import TrainingRequest

from smjobs_runtime import COMPLETE_MARKER, CONFIG_FILE

LOCK_FILE = ".smjobs.lock"
MIN_FREE_BYTES = 64 * 2**20
"""Room every output folder needs at least, when the model's size is unknown."""
TORCH_PROCESS_BYTES = 0.4 * 2**30
"""Resident memory of a training process before its model exists: the interpreter, torch and gloo (measured about
0.35 GiB with torch 2.13 on CPU)."""
MEMORY_MARGIN = 0.9
BUNDLED_GPT_DEFAULTS = {"n_layers": 2, "d_model": 64, "n_heads": 4, "seq_len": 32, "vocab_size": 256}
"""The bundled scripts' gpt dimensions a job leaves unset (entry_points/common/models.py; a test holds them equal)."""
"""Share of this machine's available memory a local run may plan to use."""


# ----- one run per work dir --------------------------------------------------------------------------------
_held: dict[Path, int] = {}
"""Locks this process holds, by work dir: preparing the same work dir again in one process reuses its lock."""


def toolkit_missing() -> str | None:
    """Why a local run cannot start here, when SageMaker's container toolkit (the ``local`` extra) is missing."""
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # blocked, or a module without a spec: unusable either way
            return True

    missing = [m for m in ("sagemaker_training", "sagemaker_pytorch_container") if absent(m)]
    if not missing:
        return None
    return (f"local runs start the job with SageMaker's container toolkit, which is not installed here (no "
            f"{', '.join(missing)}). To fix: pip install 'smjobs[local]' (the sagemaker-training and "
            "sagemaker-pytorch-training packages); nothing was created.")


def lock(work_dir: Path) -> Problem | None:
    """Take the work dir's lock for this process (kept until ``unlock``), or say which process holds it."""
    work_dir = Path(work_dir).resolve()
    if work_dir in _held:
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        return Problem("--work-dir", f"{work_dir} is in use by another local run (PID {holder}); two runs would write the "
                       "same checkpoints, and --fresh in one would delete the other's.",
                       "wait for that run to end (or stop it), or give this run its own --work-dir.")
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[work_dir] = fd  # the kernel drops the lock when this process ends, however it ends
    return None


def unlock(work_dir: Path) -> None:
    fd = _held.pop(Path(work_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


# ----- folders ------------------------------------------------------------------------------------------------
def folder_problems(folders: dict[str, Path], needed_bytes: float = MIN_FREE_BYTES) -> list[Problem]:
    """Each folder (by the name the user knows it by) can be written and has ``needed_bytes`` free."""
    problems = []
    for name, folder in folders.items():
        probe = folder / f".smjobs-write-test-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            problems.append(Problem("--work-dir", f"the {name} folder {folder} cannot be written ({exc.strerror or exc}); "
                                    "the run would lose its work when it saves.",
                                    "make it writable, or use another --work-dir."))
            continue
        free = shutil.disk_usage(folder).free
        if free < needed_bytes:
            problems.append(Problem("--work-dir", f"the {name} folder {folder} has {free / 2**20:,.0f} MiB free; the run "
                                    f"needs about {needed_bytes / 2**20:,.0f} MiB there (model and checkpoint).",
                                    "free some space, or use a --work-dir on a disk with room."))
    return problems


def channel_problems(request: TrainingRequest) -> list[Problem]:
    """Local channels exist, are directories and hold at least one file (S3 channels cannot be read locally)."""
    problems = []
    for name, channel in request.inputs.items():
        uri = channel["uri"]
        folder = Path(uri).expanduser()
        if uri.startswith("s3://"):
            problems.append(Problem(f"inputs.{name}.uri", f"{uri} is in S3; a local run reads channels from local directories.",
                                    f"download the data and run with --set inputs.{name}.uri=./local/dir."))
        elif manifests.is_manifest(uri):
            problems += manifests.problems(f"inputs.{name}.uri", uri)
        elif folder.is_file():
            continue  # a channel of one file (a model)
        elif not folder.is_dir():
            problems.append(Problem(f"inputs.{name}.uri", f"local directory {uri!r} does not exist.", "create it or fix the path."))
        elif not any(p.is_file() for p in folder.rglob("*")):
            problems.append(Problem(f"inputs.{name}.uri", f"local directory {uri!r} holds no files; the training script "
                                    "would find no data.", "put the channel's data in it, or point the channel at the data."))
    return problems


# ----- parallel degrees ------------------------------------------------------------------------------------
def degree_problems(request: TrainingRequest, processes: int) -> list[Problem]:
    """Every parallel degree of the job's strategy fits the local process count (the degrees are the job's own)."""
    settings = request.strategy_settings
    kind = settings.get("parallel")
    if kind == "pipeline":
        product = settings["dp_degree"] * settings["pp_degree"] * settings["tp_degree"]
        if product != processes:
            return [Problem("--processes", f"dp({settings['dp_degree']}) x pp({settings['pp_degree']}) x tp({settings['tp_degree']}) = "
                            f"{product} processes are needed; the local run has {processes}.",
                            f"run with --processes {product}, or set the degrees with --set distribution.dp_degree=... .")]
    if kind == "fsdp" and settings.get("fsdp_sharding") == "hybrid_shard":
        degree = settings.get("fsdp_shard_degree") or processes
        if degree > processes or processes % degree:
            return [Problem("distribution.shard_degree", f"hybrid sharding over groups of {degree} processes needs a multiple of "
                            f"{degree} processes; the local run has {processes}.",
                            f"run with --processes {degree * max(1, processes // degree)}, or lower the shard degree with "
                            "--set distribution.shard_degree=... .")]
    if kind == "smp_v2":
        params = request.estimator["distribution"]["smdistributed"]["modelparallel"]["parameters"]
        tp, shard = params.get("tensor_parallel_degree", 1), params.get("hybrid_shard_degree", 0)
        group = tp * (shard or 1)
        if processes % group:
            fit = (f"--set distribution.hybrid_shard_degree={processes // tp}" if processes % tp == 0
                   else f"--set distribution.tensor_parallel_degree=1 --set distribution.hybrid_shard_degree={processes}")
            return [Problem("distribution.tensor_parallel_degree", f"tensor_parallel_degree {tp} x hybrid_shard_degree "
                            f"{shard or 1} = {group} must divide the local process count {processes}.",
                            f"run with --processes {group}, or fit the degrees to {processes} processes: {fit}.")]
    if kind == "naive_mp" and processes < 1:
        return [Problem("--processes", "naive model parallelism needs at least one process.", "run with --processes 2.")]
    return []


# ----- memory --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryCheck:
    per_process_bytes: float
    processes: int
    available_bytes: float
    detail: str
    parameters: int
    """The model's parameter count: what the model file and checkpoints take on disk."""

    @property
    def storage_bytes(self) -> float:
        """Disk for the fp32 model file and one checkpoint (weights and Adam's two moments), plus slack."""
        return self.parameters * (4 + 12) + MIN_FREE_BYTES

    @property
    def total_bytes(self) -> float:
        return self.per_process_bytes * self.processes


def available_memory_bytes() -> float:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), else total physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_memory(spec, processes: int) -> MemoryCheck | None:
    """The planner's memory model applied to a local run: the job's layout over ``processes`` CPU processes in fp32
    (no CUDA context), plus what torch itself takes per process. None when the model is not described (plan.model,
    or the bundled gpt's hyperparameters)."""
    from smjobs import catalog
    from smjobs.planner.layouts import layouts_for
    from smjobs.planner.resolve import pinned_strategy, workload

    if spec.plan.model_factory is not None or spec.compute.instance_type not in catalog.instances().types:
        return None  # a traced model would need a trace here; `validate` sizes it against the GPU
    if spec.hyperparameters.get("model") == "gpt":  # the script's defaults size what the job leaves unset
        spec = spec.model_copy(update={"hyperparameters": {**BUNDLED_GPT_DEFAULTS, **spec.hyperparameters}})
    load, problems = workload(spec, defaults=True)
    if load is None or problems:
        return None
    host = replace(catalog.instances().types[spec.compute.instance_type], gpu_count=processes)
    layouts = layouts_for(pinned_strategy(spec), host, 1, replace(load, recompute=load.recompute or "none"))
    if not layouts:
        return None
    layout, micro = layouts[0]
    layout = replace(layout, precision="fp32", activation_bytes=4, overhead_gib=0.0, allocator_reserve=0.0, flash_attention=False)
    memory = load.shape.memory(layout, micro)
    # every process builds the whole fp32 model before FSDP, tensor or pipeline parallelism splits it
    built = load.shape.parameter_count * 4
    if built > memory.total:
        detail = f"{built / 2**30:,.2f} GiB for the whole fp32 model, which each process builds before it is split"
    else:
        detail = memory.describe().replace(" per GPU", " of model state and activations")
    return MemoryCheck(max(memory.total, built) + TORCH_PROCESS_BYTES, processes, available_memory_bytes(),
                       f"{detail} + {TORCH_PROCESS_BYTES / 2**30:.1f} GiB for torch itself", load.shape.parameter_count)


def memory_problems(check: MemoryCheck | None) -> list[Problem]:
    if check is None or check.total_bytes <= check.available_bytes * MEMORY_MARGIN:
        return []
    fits = int(check.available_bytes * MEMORY_MARGIN // check.per_process_bytes)
    return [Problem("--processes", f"{check.processes} processes need about {check.total_bytes / 2**30:,.1f} GiB of memory "
                    f"({check.per_process_bytes / 2**30:,.2f} GiB each: {check.detail}); this machine has "
                    f"{check.available_bytes / 2**30:,.1f} GiB available, so the kernel would kill the run.",
                    (f"run with --processes {fits} or fewer, or " if fits >= 1 else "")
                    + "train a smaller model locally, e.g. --set n_layers=2 --set d_model=64.")]


# ----- resuming ----------------------------------------------------------------------------------------------
def newest_checkpoint(checkpoint_dir: Path) -> Path | None:
    done = sorted(p for p in Path(checkpoint_dir).glob("step_*") if (p / COMPLETE_MARKER).exists())
    return done[-1] if done else None


def _decoded(value):
    """A hyperparameter as the script reads it: smjobs sends lists and dicts as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def resume_problems(request: TrainingRequest, checkpoint_dir: Path) -> list[Problem]:
    """A checkpoint this run would resume was saved with other model-shaping hyperparameters than the job has."""
    newest = newest_checkpoint(checkpoint_dir)
    if newest is None:
        return []
    try:
        config = json.loads((newest / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return []  # no record (or an unreadable one): the script decides
    saved, given = config.get("hyperparameters", {}), request.estimator["hyperparameters"]
    changed = [f"{name}: {saved[name]!r} -> {_decoded(given[name])!r}" for name in config.get("shaping", [])
               if name in saved and name in given and _decoded(given[name]) != saved[name]]
    if not changed:
        return []
    return [Problem("hyperparameters", f"the checkpoint this run would resume ({newest}) was saved with other model-shaping "
                    f"values: {'; '.join(changed)}.",
                    "use the checkpoint's values to resume it, or run with --fresh to start over (deletes its checkpoints).")]


# ----- a finished run ----------------------------------------------------------------------------------------
FINISHED_FILE = "smjobs-finished.json"
"""In the output folder of a run that succeeded (so ``--fresh`` removes it): what it ran and what it saved."""


PER_SUBMISSION = ("sagemaker_job_name", "sagemaker_submit_directory", "sagemaker_region")
"""Hyperparameters that name one submission (its timestamped job name, its S3 code path), not what it trains."""


def _what_ran(request: TrainingRequest) -> dict:
    hyperparameters = request.create_training_job.get("HyperParameters", {})
    return {"entry_point": request.estimator.get("entry_point"),
            "hyperparameters": {k: v for k, v in hyperparameters.items() if k not in PER_SUBMISSION}}


def record_finished(request: TrainingRequest, output_dir: Path, model_dir: Path, duration_s: float) -> None:
    """Note that the run succeeded: its entry point, hyperparameters and model files, and when."""
    import datetime

    record = {**_what_ran(request), "models": sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file()),
              "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "duration_s": round(duration_s, 1)}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FINISHED_FILE).write_text(json.dumps(record, indent=1))


def finished_before(request: TrainingRequest, output_dir: Path, model_dir: Path) -> dict | None:
    """The record of an earlier run in this work dir that finished with the same entry point and hyperparameters,
    when its model files are all still there: running it again would only train the same model again."""
    try:
        record = json.loads((output_dir / FINISHED_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or {k: record.get(k) for k in ("entry_point", "hyperparameters")} != _what_ran(request):
        return None
    models = record.get("models") or []
    if not models or not all((model_dir / name).is_file() for name in models):
        return None
    return record


# ----- leaving a refused run's work dir as it was ---------------------------------------------------------------
class CreatedPaths:
    """The folders (and files) a run's preparation is about to create: ``remove`` takes them away again when the
    run is refused, so that a refused run leaves the work dir as it found it."""

    def __init__(self, *paths: Path):
        self.paths: list[Path] = []
        for path in paths:
            path = Path(path).resolve()
            for part in [path, *path.parents]:  # the missing ones, outermost last
                if part.exists():
                    break
                if part not in self.paths:
                    self.paths.append(part)

    def remove(self) -> None:
        for path in sorted(self.paths, key=lambda p: len(p.parts), reverse=True):  # deepest first
            try:
                path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
            except OSError:
                pass  # not empty any more (something else wrote there): left as it is
