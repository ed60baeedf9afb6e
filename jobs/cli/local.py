"""``smjobs run --local``: a job on this machine under SageMaker's container toolkit, its progress and its summary."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.shared import LOCAL, SetOpt, SpecArg, command, err, fail, load, notice, out, spec_region
from smjobs.errors import SpecError, Stopped, UsageError
from smjobs.tables import print_table


@command(panel=LOCAL)
def run(
    spec: SpecArg,
    local: Annotated[bool, typer.Option("--local", show_default=False, help="Run on this machine: what `run` always does (accepted for older scripts).")] = True,
    processes: Annotated[int | None, typer.Option("--processes", min=1, help="Processes on this host (default: the job's per-host count, at most the CPUs).")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where the /opt/ml tree goes (default: runs/<name>); kept, so a re-run resumes from its checkpoints.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the work dir's checkpoints and model first.")] = False,
    overrides: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only the ranks' lines, not the container toolkit's own (its environment dump).")] = False,
) -> None:
    """Run the job as SageMaker would, on this machine, under the container toolkit (no Docker)."""
    raise typer.Exit(interruptible(lambda: _run_local(spec, processes, work_dir, fresh, overrides, quiet), "trained"))


def interruptible(start, done_nothing: str) -> int:
    """Run ``start`` (a local run's preparation and launch): its exit code. A stop before the run's processes
    exist (``Stopped``, from the handlers ``smjobs.__main__`` installs) says that nothing was ``done_nothing``; the
    run itself handles a stop while it lives."""
    try:
        return start()
    except Stopped as stop:
        err.print(f"stopped by {stop.signal_name} before the run started; nothing was {done_nothing}", markup=False)
        return stop.exit_code


def _run_local(spec, processes, work_dir, fresh, overrides, quiet=False) -> int:
    from smjobs import api
    from smjobs.local import runner as local_run
    from smjobs.local.prechecks import newest_checkpoint

    try:
        job = load(spec, None, overrides)
        request, layout = api.prepare_local(job, processes=processes, work_dir=work_dir, fresh=fresh,
                                            region=spec_region(job, None))
    except (SpecError, UsageError) as exc:
        fail(exc)
    except local_run.FinishedBefore as done:
        models = ", ".join(str(done.layout.model_dir / name) for name in done.record.get("models", []))
        out.print(f"{job.name} already trained with these hyperparameters in {done.layout.base_dir} (finished "
                  f"{done.record.get('finished', '?')}): {models}. Nothing to do; --fresh trains again.", markup=False)
        return 0
    notice(job, remote=False)
    compute = job.compute
    procs = processes or local_run.default_processes(request)
    cpus = os.cpu_count() or 1
    if processes is not None and processes > cpus:
        err.print(f"note: {processes} processes share this machine's {cpus} CPUs: each runs slower; the numbers "
                  "are the same", markup=False)
    out.print(f"[bold]local run[/] of {escape(job.name)}: 1 host x {procs} process(es) standing in for "
              f"{compute.instance_count} x {compute.instance_type} ({request.world_size} processes); "
              f"launcher {local_run.launcher(request)}; work dir {escape(str(layout.base_dir))}", highlight=False)
    installs = local_run.local_env.installs_packages(layout.code_dir)
    if installs:
        where = local_run.local_env.environment_root(Path(request.source_dir))
        out.print(f"{installs}: the toolkit installs it into an isolated environment ({escape(str(where))}) that "
                  "reuses this environment's torch; smjobs' own environment is not changed", highlight=False)
    resume = newest_checkpoint(layout.checkpoint_dir)
    if resume is not None:
        out.print(f"resuming from checkpoint {resume.name} in {resume.parent} (--fresh starts over)", markup=False)
    result = run_with_progress(request, layout, show_toolkit=not quiet)
    report(result)
    return result.shell_exit_code


STEP = re.compile(r"\bstep=(\d+)")
RANK_PREFIX = re.compile(r"^\[default(\d+)\]:")


def run_with_progress(request, layout, *, show_toolkit: bool = True):
    """Launch a prepared local run; print rank lines (and the toolkit's own, dimmed) with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from smjobs.local import runner as local_run

    total = request.estimator["hyperparameters"].get("steps")
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=out, transient=True, disable=not isinstance(total, int)) as progress:
        task = progress.add_task("train", total=total if isinstance(total, int) else None)

        def show(line: str) -> None:
            match = RANK_PREFIX.match(line)
            if match:
                out.print(f"[cyan]\\[rank {match.group(1)}][/] {escape(line[match.end():])}", highlight=False)
                step = STEP.search(line)
                if step:
                    progress.update(task, completed=int(step.group(1)))
            elif show_toolkit:
                out.print(f"[dim]{escape(line)}[/]", highlight=False)

        return local_run.launch(request, layout, on_line=show)


def report(result) -> None:
    """Where the model, output and checkpoints of a local run are, its metrics and any failure."""
    from rich.table import Table

    color = "yellow" if result.stopped else "green" if result.exit_code == 0 else "red"
    table = Table(title=f"local run [{color}]{escape(result.status)}[/] in {result.duration_s:.1f} s", show_header=False)
    table.add_column()
    table.add_column()
    models = sorted(str(p) for p in result.layout.model_dir.rglob("*") if p.is_file())
    table.add_row("model", escape(", ".join(models)) or "(none saved)")
    table.add_row("output", escape(str(result.layout.output_dir)))
    table.add_row("checkpoints", escape(str(result.layout.checkpoint_dir)))
    for name, value in result.metrics.items():
        table.add_row(escape(f"metric {name}"), f"{value:g}")
    if result.tracking_uri:
        table.add_row("MLflow store", escape(result.tracking_uri))
    if result.failure and not result.stopped:
        from smjobs.local.failures import launcher_ended

        lines = result.failure.strip().splitlines()
        summary = lines[0] if result.root_cause else launcher_ended(result.failure) or lines[-1]
        table.add_row("failure", escape(summary))
    print_table(out, table)
