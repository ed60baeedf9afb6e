"""What every ``smjobs`` command shares: the typer app, the consoles, the common options and the helpers that
load a spec, report problems and call AWS. Command modules import this module and register on ``app``;
``smjobs.cli`` imports them (this module imports none of them).

Bad input exits with code 2 and a list of problems, never a traceback; nothing is uploaded and no job is
created. The SageMaker SDK is imported only when a job is really submitted.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from smjobs.errors import SpecError, UsageError

if TYPE_CHECKING:
    from smjobs.spec.job import JobSpec

# Each command imports what it needs when it runs (`smjobs --help` and `smjobs validate` import no SDK, boto3,
# planner or rich tables they do not use): the imports below are the few every command shares.


def _reflow(text: str) -> str:
    """A docstring's paragraphs as single lines, so rich wraps them to the terminal instead of keeping the source's
    line breaks mid-sentence."""
    paragraphs = [" ".join(line.strip() for line in part.splitlines()) for part in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


class _PlainHelp:
    """How every command's help reads, set on the command class (click's ``cls=`` extension point) rather than by
    patching typer: a flag shows no value placeholder (typer 0.29 labels it ``<bool>``; an empty metavar shows
    none, and typer shows an option's metavar instead of its type), an option with a value shows its name in
    capitals (``--work-dir WORK_DIR``, not ``<path>``), an argument its name (``SPEC``, not ``{SPEC} <str>``: set on
    each argument object, typer's own display methods being per-instance), and descriptions are whole paragraphs.
    It reaches ``--help`` and the completion options typer adds later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = _reflow(self.help)

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, typer.core.TyperArgument):
                # typer 0.29 writes a required argument as {SPEC} in the usage line and its type (<str>) beside it:
                # the usage line reads SPEC (required) or [SPEC], as click and man pages write it
                name = param.metavar or (param.name or "").upper()
                plain = name if param.required else f"[{name}]"
                param._usage_display_name = lambda plain=plain, many=param.nargs != 1: plain + ("..." if many else "")
                param.display_type_rich = lambda ctx: None
            if param.metavar is not None:
                continue
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif param.name:
                param.metavar = param.name.upper()
        return params


class Command(_PlainHelp, typer.core.TyperCommand):
    """Every smjobs command (``@app.command(cls=Command)``: ``command`` below does it)."""

    def make_context(self, *args: Any, **kwargs: Any):
        # each invocation starts as text (one process may run several, as tests and notebooks do); --output's
        # callback sets json while the arguments are parsed, before the command runs
        _Output.json = False
        return super().make_context(*args, **kwargs)


class Group(_PlainHelp, typer.core.TyperGroup):
    """The ``smjobs`` app and its sub-apps (``prices``, ``infra``)."""


app = typer.Typer(cls=Group, no_args_is_help=True, help="Validated distributed PyTorch jobs for SageMaker.")

# The groups `smjobs --help` lists commands in
JOBS, LOCAL, PLAN, ACCOUNT, CATALOG = "Jobs on SageMaker", "On this machine", "Check and plan", "Account", "Catalog"


def command(name: str | None = None, *, panel: str | None = None, **kwargs: Any):
    """``@app.command`` with smjobs' help (``_PlainHelp``), listed under ``panel`` in ``smjobs --help``."""
    return app.command(name, cls=Command, rich_help_panel=panel, **kwargs)


# Piped or redirected output is for files and scripts: no hard wrap at 80 columns (YAML, JSON and long tokens
# stay whole); a terminal wraps text to its width.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=True)  # problems stay one line each: easy to read in CI logs and to grep

SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="Job spec file (YAML or JSON), or the name of a shipped example.")]
RegionOpt = Annotated[str | None, typer.Option(
    "--region", help="AWS region (default: the spec's, then AWS_REGION, then the profile's in the AWS config).")]
JobRegionOpt = Annotated[str | None, typer.Option(
    "--region", help="AWS region (default: where smjobs submitted the job, then AWS_REGION, then the AWS config).")]
AccountRegionOpt = Annotated[str | None, typer.Option(
    "--region", help="AWS region (default: AWS_REGION, then the profile's in the AWS config).")]


class _Output:
    """The ``--output`` of the command being run: ``fail`` and ``aws_call`` print their errors in the same form."""

    json = False


def _set_output(value: str) -> str:
    if value not in ("text", "json"):
        raise typer.BadParameter(f"{value!r}: choose text or json")
    _Output.json = value == "json"
    return value


OutputOpt = Annotated[str, typer.Option(
    "--output", "-o", metavar="FORMAT", callback=_set_output,
    help="text (tables, the default) or json: one JSON document on stdout, whose schema docs/schemas/ holds.")]


def json_output() -> bool:
    """Whether the command prints JSON (``-o json``)."""
    return _Output.json


def emit(document: Any) -> None:
    """Print one ``smjobs.cli.schemas`` model as a JSON document (a line of its own for JSON lines)."""
    indent = None if getattr(document, "kind", "") in ("log", "end") else 2
    sys.stdout.write(document.model_dump_json(indent=indent) + "\n")
    sys.stdout.flush()


ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="AWS profile for credentials and region (default: AWS_PROFILE, then the default profile).")]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint-url", help="Send every AWS call to this endpoint, e.g. a moto server.")
]


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a field: key=value sets a hyperparameter, a.b=value any spec field. Repeatable."),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("smjobs")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        out.print(f"smjobs {number}", markup=False, highlight=False)
        raise typer.Exit()


class _LogLines(logging.Handler):
    """smjobs' library log records, one line each on stderr through rich (``warning: ...``, ``info: ...``)."""

    STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname
            err.print(f"[{self.STYLES.get(level, 'bold')}]{level.lower()}:[/] {escape(record.getMessage())}"
                      + (f" [dim]({escape(record.name)})[/]" if record.levelno <= logging.DEBUG else ""), highlight=False)
        except Exception:  # noqa: BLE001  (logging's own rule: a handler never raises into the caller)
            self.handleError(record)


def log_level(verbose: int, quiet: bool) -> int:
    """The ``smjobs`` logger's level for ``-v`` (given ``verbose`` times) and ``-q``: warnings by default, info with
    -v, debug with -vv, errors only with -q."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def configure_logging(level: int) -> None:
    """Render the ``smjobs`` logger's records on stderr at ``level`` (the handler is added once per process; a
    second call sets the level). They still propagate: the command line's process has no root handler to print
    them twice, and a test's or an embedding program's handlers see them."""
    logger = logging.getLogger("smjobs")
    logger.setLevel(level)
    if not any(isinstance(h, _LogLines) for h in logger.handlers):
        logger.addHandler(_LogLines())


@app.callback()
def _main(
    show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print smjobs' version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, metavar="", show_default=False,
                                         help="Say more of what smjobs does: -v what it sends and starts, -vv debugging detail.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors from smjobs' library (not a command's own output).")] = False,
) -> None:
    """Validated distributed PyTorch jobs for SageMaker: validate, plan, run locally, submit, and follow the job."""
    configure_logging(log_level(verbose, quiet))


def load(spec: str, region: str | None = None, overrides: list[str] | None = None) -> JobSpec:
    """Read and validate a spec file (or shipped example by name), with ``--set`` overrides applied."""
    from smjobs.api import read_spec
    from smjobs.checks.validate import validate_and_plan

    with notices():
        job, found = validate_and_plan(read_spec(spec, overrides or [])[1], region=region)
    if found is not None and found.choice is not None:
        err.print(f"[cyan]instance_type auto ->[/] {escape(describe_choice(found.choice))} "
                  f"(`smjobs plan {escape(str(spec))}` shows the alternatives)", highlight=False)
    return job


def describe_choice(c) -> str:
    from smjobs import catalog

    spec = catalog.instances().types[c.instance_type]
    return (f"{c.instance_count} x {c.instance_type} ({c.describe_layout()}, micro-batch {c.micro_batch}; {c.memory.total_gib:.1f} of "
            f"{spec.gpu_memory_gib:.1f} GiB per GPU; {c.step.total_s:.2f} s/step; ${c.usd_per_hour:,.2f}/h; job about ${c.job_usd:,.0f})")


def spec_region(spec: JobSpec, region: str | None, profile: str | None = None) -> str | None:
    """The region of a command on ``spec``: the flag, the spec's, then the AWS config's (None when none is set);
    a profile that does not exist is a usage error."""
    return region or spec.region or configured(profile)


def configured(profile: str | None = None) -> str | None:
    """The AWS CLI's region for ``profile`` (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the config file), or None; a
    profile that does not exist is a usage error."""
    from smjobs.aws.region import RegionError, configured_region

    try:
        return configured_region(profile)
    except RegionError as exc:
        fail(UsageError(str(exc)))


def fail(exc: Exception, code: int = 2) -> None:
    """Report bad input (every problem with its fix, or the error) and exit ``code``; as an ``ErrorOutput`` on
    stdout under ``-o json``."""
    if _Output.json:
        from smjobs.cli.schemas import ErrorOutput, Problem

        problems = [Problem(path=p.path or None, message=p.message, fix=p.fix or None)
                    for p in getattr(exc, "problems", ())]
        message = f"{len(problems)} problem(s) in the job spec (nothing was sent to AWS)" if isinstance(exc, SpecError) else str(exc)
        emit(ErrorOutput(message=message, problems=problems))
        raise typer.Exit(code)
    if isinstance(exc, SpecError):
        err.print(f"[bold red]{len(exc.problems)} problem(s) in the job spec[/] (nothing was sent to AWS):")
        for problem in exc.problems:
            err.print(f"  [red]-[/] [bold]{escape(problem.path or '<spec>')}[/]: {escape(problem.message)}", highlight=False)
            if problem.fix:
                err.print(f"      To fix: {escape(problem.fix)}", highlight=False)
    else:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(code)


def notice(job: JobSpec, region: str | None = None, *, remote: bool = True) -> list[str]:
    """Print the strategy's notice, placement warnings and, for jobs bound for SageMaker (``remote``), an
    availability that could not be checked (stderr: a dry run's stdout stays plain YAML or JSON); the lines
    printed."""
    texts = notice_texts(job, region, remote=remote)
    for level, text in texts:
        err.print(f"[yellow]{level}:[/] {escape(text)}", highlight=False)
    return [f"{level}: {text}" for level, text in texts]


def notice_texts(job: JobSpec, region: str | None = None, *, remote: bool = True) -> list[tuple[str, str]]:
    """What ``notice`` prints, as (level, text) pairs."""
    from smjobs.checks.cluster import availability_unknown
    from smjobs.checks.placement import placement_warnings

    texts = [("notice", job.distribution.notice)] if job.distribution.notice else []
    texts += [("warning", text) for text in placement_warnings(job)]
    if remote and (unknown := availability_unknown(job, region)):
        texts.append(("notice", unknown))
    return texts


def aws_context(region: str | None, endpoint_url: str | None, what: str = "", profile: str | None = None):
    """The AwsContext of a command (``api.aws_context``: the region as the AWS CLI resolves it, us-east-1 for an
    emulator endpoint); no region at all is a usage error naming the fix."""
    from smjobs import api

    try:
        return api.aws_context(region=region, endpoint_url=endpoint_url, profile=profile, what=what)
    except UsageError as exc:
        fail(exc)


@contextlib.contextmanager
def notices():
    """smjobs' own warnings (a custom image, a quota it could not read) print as one-line notices on stderr; other
    packages' warnings go on as warnings."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # outside the recording: a warning passed on here is not recorded again
        package = str(Path(__file__).parents[1])
        for warning in caught:
            if warning.filename.startswith(package):
                err.print(f"[yellow]notice:[/] {escape(str(warning.message))}", highlight=False)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def aws_call(fn, *args: Any):
    """Run an AWS-calling function: an AWS error exits 1 with its message; smjobs' own warnings print as notices."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with notices():
            return fn(*args)
    except (ClientError, BotoCoreError) as exc:
        aws_error(exc)


def aws_error(exc: Exception) -> None:
    """An AWS error: its message, and exit 1."""
    if _Output.json:
        fail(UsageError(f"AWS error: {exc}"), code=1)
    err.print(f"[bold red]AWS error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(1) from None
