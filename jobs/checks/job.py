"""smjobs' rules about what a job carries: its code and the script's arguments, hyperparameters, environment and
tags, storage locations, network security and metric definitions. Each ``check_*`` takes a parsed spec and returns
its problems."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from smjobs.checks.script_args import read_arguments
from smjobs.errors import Problem
from smjobs.request import manifests, source
from smjobs.request.training import build_request, source_dir
from smjobs.spec.hyperparameters import (
    KEY_PATTERN,
    MAX_HYPERPARAMETERS,
    MAX_KEY_CHARS,
    MAX_VALUE_CHARS,
    SDK_BASE_KEYS,
    looks_secret,
    to_estimator_value,
    to_wire,
)
from smjobs.spec.job import ENTRY_POINTS_DIR, JobSpec

from smjobs_runtime import CHECKPOINT_DIR_ENV, DISTRIBUTION_ENV

S3_URI = re.compile(r"s3://(?P<bucket>[^/]+)(/(?P<key>.*))?")
BUCKET_NAME = re.compile(r"(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SUBNET_ID = re.compile(r"subnet-[0-9a-f]{8,17}")
SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")
KMS_KEY = re.compile(
    r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+"
    r"|alias/[A-Za-z0-9/_-]+"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|mrk-[0-9a-f]{32}"
)


def check_code(spec: JobSpec) -> list[Problem]:
    out = []
    root = source_dir(spec)
    if not root.is_dir():
        return [Problem("source_dir", f"{str(root)!r} is not a directory.", "point source_dir at the folder that holds the training script.")]
    if (root / "smdistributed").exists() or (root / "smdistributed.py").exists():
        out.append(Problem("source_dir", f"{root} contains an 'smdistributed' package, which would shadow SageMaker's own library in the container.",
                           "remove it from source_dir; install smdistributed-stub separately for local runs."))
    entry = Path(spec.entry_point)
    if entry.suffix != ".py":
        out.append(Problem("entry_point", f"{spec.entry_point!r} is not a Python file; torchrun and smjobs' launchers run .py scripts.",
                           "name a .py script inside source_dir."))
    elif entry.is_absolute() or ".." in entry.parts:
        out.append(Problem("entry_point", f"{spec.entry_point!r} must be a path inside source_dir.", "give it relative to source_dir, e.g. 'train.py'."))
    elif source.bundled_additions(root, spec.entry_point):
        if (root / "common").exists() or (root / "common.py").exists():
            out.append(Problem("source_dir", f"{root} has its own 'common', which would shadow the package smjobs adds "
                               f"with {spec.entry_point}.", "rename yours, or give your own entry point."))
        out += check_archive(spec)
    elif not (root / entry).is_file():
        scripts = sorted(str(p.relative_to(root)) for p in root.glob("*.py") if not p.name.startswith("_"))
        near = difflib.get_close_matches(spec.entry_point, scripts, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        if spec.source_dir is None:
            out.append(Problem("entry_point", f"{spec.entry_point!r} is not one of smjobs' bundled scripts (searched {root}: {', '.join(scripts)}).",
                               f"{hint}For your own script, set source_dir to the folder that holds it (a spec file's own folder is "
                               "the default when the script is there)."))
        else:
            out.append(Problem("entry_point", f"{spec.entry_point!r} does not exist in {root} (the source_dir searched).",
                               f"{hint}Scripts there: {', '.join(scripts) or 'none'}; or set source_dir to the folder that holds it."))
    else:
        out += check_archive(spec)
    return out


def check_archive(spec: JobSpec) -> list[Problem]:
    """The code archive holds the entry point and stays under the size limit."""
    manifest = source.manifest_for(build_request(spec))
    out = []
    if Path(spec.entry_point).as_posix() not in manifest.paths():
        reason = next((e.reason for e in manifest.excluded if Path(spec.entry_point).as_posix().startswith(e.path.rstrip("/"))), "excluded")
        out.append(Problem("entry_point", f"{spec.entry_point} would not be in the code archive ({reason}).",
                           f"remove the pattern that matches it from {manifest.root}/{source.IGNORE_FILE}."))
    if manifest.total_bytes > source.MAX_ARCHIVE_BYTES:
        biggest = ", ".join(f"{f.path} ({source.human_bytes(f.bytes)})" for f in manifest.biggest())
        out.append(Problem("source_dir", f"the code archive would hold {source.human_bytes(manifest.total_bytes)} in {len(manifest.files)} files "
                           f"(limit {source.human_bytes(source.MAX_ARCHIVE_BYTES)}; every host downloads it before training). Biggest: {biggest}.",
                           f"list what is not code in {manifest.root}/{source.IGNORE_FILE} (gitignore syntax), or move data to an input "
                           "channel (inputs: {name: {uri: ...}}); `smjobs submit --dry-run` lists what is packed."))
    return out


def check_hyperparameters(spec: JobSpec) -> list[Problem]:
    out = []
    owned = spec.distribution.script_settings()
    for key, value in spec.hyperparameters.items():
        path = f"hyperparameters.{key}"
        if key.startswith("sagemaker_"):
            out.append(Problem(path, "keys starting with 'sagemaker_' are reserved for SageMaker and its launchers.", "rename the key."))
        elif not KEY_PATTERN.fullmatch(key):
            out.append(Problem(path, f"{key!r} cannot be a command-line flag (--{key}).", "use letters, digits, '_' and '-', starting with a letter or '_'."))
        if len(key) > MAX_KEY_CHARS:
            out.append(Problem(path, f"key has {len(key)} characters; SageMaker allows {MAX_KEY_CHARS}.", "shorten the key."))
        if key in owned and value != owned[key]:
            out.append(Problem(path, f"contradicts distribution.type {spec.distribution.type!r}, which sets {key} to {owned[key]!r} "
                               f"(in the job's environment, {DISTRIBUTION_ENV}); as a flag it would override that in smjobs' scripts.",
                               "remove it from hyperparameters; configure it on the distribution instead."))
        if value is None:
            out.append(Problem(path, "is null, which reaches the script as an empty string.", "give it a value or remove the key."))
            continue
        wire = to_wire(to_estimator_value(value))
        if len(wire) > MAX_VALUE_CHARS:
            out.append(Problem(path, f"encodes to {len(wire)} characters; SageMaker allows {MAX_VALUE_CHARS} per value.",
                               "put large settings in a config file in source_dir or an input channel and pass its name."))
        reason = looks_secret(key, value)
        if reason:
            out.append(Problem(path, f"looks like a secret ({reason}); hyperparameters are visible in the console and DescribeTrainingJob.",
                               "keep secrets in AWS Secrets Manager or SSM Parameter Store and read them in the script through the execution role."))
    total = len(spec.hyperparameters) + 1 + len(
        set(SDK_BASE_KEYS) | set(spec.distribution.sdk_hyperparameters(spec.compute.instance_type))
    )
    if total > MAX_HYPERPARAMETERS:
        out.append(Problem("hyperparameters", f"the job would have {total} hyperparameters ({len(spec.hyperparameters)} yours, the rest added by the SDK and smjobs); SageMaker allows {MAX_HYPERPARAMETERS}.",
                           "group related settings into one list or dict value, or a config file."))
    return out


# The channels a script cannot start without: ``os.environ["SM_CHANNEL_TRAIN"]`` and ``env.channels["train"]``
# (a subscript, not ``.get``: a script that falls back when a channel is missing asks for nothing).
_CHANNEL_READS = (re.compile(r"""environ\[\s*["']SM_CHANNEL_([A-Z0-9_]+)["']\s*\]"""),
                  re.compile(r"""channels\[\s*["']([A-Za-z0-9.\-_]+)["']\s*\]"""))


def script_label(spec: JobSpec) -> str:
    """Whose script a problem is about: smjobs' bundled one, or the user's by its path."""
    if source_dir(spec) == ENTRY_POINTS_DIR:
        return f"the bundled {spec.entry_point}"
    return f"{source_dir(spec) / spec.entry_point} (your script)"


def with_script_defaults(spec: JobSpec) -> JobSpec:
    """For a bundled script, the spec with the hyperparameters its argparse defaults fill in: what the job trains,
    so that the memory check sizes the bundled gpt from ``n_layers`` alone. Other scripts' specs are returned as
    they are (their defaults are theirs to document)."""
    if source_dir(spec) != ENTRY_POINTS_DIR:
        return spec
    script = source_dir(spec) / spec.entry_point
    arguments = read_arguments(script, source_dir(spec)) if script.is_file() else None
    if arguments is None:
        return spec
    filled = {**arguments.defaults(), **spec.hyperparameters}
    return spec if filled == spec.hyperparameters else spec.model_copy(update={"hyperparameters": filled})


def check_channels(spec: JobSpec) -> list[Problem]:
    """Every channel the entry point reads by a fixed name is defined in ``inputs`` (SageMaker sets
    ``SM_CHANNEL_<NAME>`` only for the channels the job has: a missing one is a KeyError after the instances
    started)."""
    script = source_dir(spec) / spec.entry_point
    if not script.is_file():
        return []
    try:
        text = script.read_text()
    except (OSError, UnicodeDecodeError):
        return []
    have = {name.upper().replace("-", "_").replace(".", "_") for name in spec.inputs}
    wanted = dict.fromkeys(m.group(1) for pattern in _CHANNEL_READS for m in pattern.finditer(text))
    return [Problem(f"inputs.{name.lower()}", f"{script_label(spec)} reads channel {name.lower()!r}, which the spec does not define; "
                    "the job would stop with a KeyError once its instances start.",
                    f"add inputs.{name.lower()}: {{uri: s3://bucket/prefix}} (or a local folder).")
            for name in wanted if name.upper().replace("-", "_").replace(".", "_") not in have]


def check_script_arguments(spec: JobSpec) -> list[Problem]:
    """Each hyperparameter reaches the script as ``--key value``: its argparse must take the key and the value."""
    script = source_dir(spec) / spec.entry_point
    arguments = read_arguments(script, source_dir(spec)) if script.is_file() else None
    if arguments is None:
        return []
    out = []
    given = set(spec.hyperparameters)
    for key, value in spec.hyperparameters.items():
        option = arguments.find(key)
        if option is None:
            if not arguments.accepts_unknown:
                near = difflib.get_close_matches(key, arguments.names(), n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}? " if near else ""
                out.append(Problem(f"hyperparameters.{key}", f"{script_label(spec)} does not accept --{key}; argparse would stop the job at start-up.",
                                   f"{hint}Its options: {', '.join(arguments.names())}."))
            continue
        given |= set(option.names)
        why = arguments.check_value(option, value) if value is not None else None
        if why:
            out.append(Problem(f"hyperparameters.{key}", f"{why}; argparse would stop the job at start-up.",
                               "give a value the option accepts, or change the add_argument call (smjobs_runtime has "
                               "boolean, json_list and json_dict types for bools, lists and dicts)."))
    for option in arguments.options:
        if option.required and not given & set(option.names):
            out.append(Problem("hyperparameters", f"{script_label(spec)} requires --{option.names[0]} ({option.where}), which no hyperparameter gives.",
                               f"add hyperparameters.{option.names[0]}."))
    # the SDK itself adds these for SageMaker's model parallel library, and the toolkit passes them as flags
    for key in sorted(k for k in spec.distribution.sdk_hyperparameters(spec.compute.instance_type) if not k.startswith("sagemaker_")):
        if arguments.find(key) is None and not arguments.accepts_unknown:
            out.append(Problem("distribution.type", f"with distribution {spec.distribution.type!r}, SageMaker's launcher passes --{key}, which "
                               f"{spec.entry_point} does not accept.",
                               f"add a --{key} option to the script (smjobs_runtime.toolkit_mapping reads it), or parse with parse_known_args."))
    return out


def check_environment_and_tags(spec: JobSpec) -> list[Problem]:
    out = []
    for key, value in spec.environment.items():
        if key in (DISTRIBUTION_ENV, CHECKPOINT_DIR_ENV):
            out.append(Problem(f"environment.{key}", "is set by smjobs (the distribution settings and checkpoint folder).",
                               "remove it; configure distribution or checkpoint_local_path instead."))
        reason = looks_secret(key, value)
        if reason:
            out.append(Problem(f"environment.{key}", f"looks like a secret ({reason}); the environment is visible in DescribeTrainingJob.",
                               "keep secrets in AWS Secrets Manager or SSM Parameter Store and read them at run time."))
    for key in spec.tags:
        if key.lower().startswith("aws:"):
            out.append(Problem(f"tags.{key}", "tag keys starting with 'aws:' are reserved for AWS.", "choose another key."))
        elif key.lower().startswith("smjobs:"):
            out.append(Problem(f"tags.{key}", "tag keys starting with 'smjobs:' are smjobs' own (`smjobs list` finds "
                               "the project's jobs by them).", "choose another key."))
    return out


def _meant_s3(uri: str) -> str | None:
    """``s3:/bucket/x``, ``S3://``, ``s3:bucket`` (perhaps already made absolute as a local path): the s3:// URI meant."""
    found = re.search(r"(?i)(?:^|/)s3:/*(?P<rest>[^/].*)$", uri)
    return f"s3://{found['rest']}" if found and not uri.startswith("s3://") else None


def _check_s3_uri(path: str, uri: str) -> list[Problem]:
    match = S3_URI.fullmatch(uri)
    if not match:
        meant = _meant_s3(uri)
        return [Problem(path, f"{uri!r} is not an s3:// URI.",
                        f"did you mean {meant!r}?" if meant else "write it as s3://bucket/prefix.")]
    if not BUCKET_NAME.fullmatch(match["bucket"]):
        return [Problem(path, f"{match['bucket']!r} is not a valid S3 bucket name.", "use 3-63 lowercase letters, digits, '.' and '-'.")]
    return []


def check_storage(spec: JobSpec) -> list[Problem]:
    out = []
    if spec.output_path:
        out += _check_s3_uri("output_path", spec.output_path)
    if spec.checkpoint_s3_uri:
        out += _check_s3_uri("checkpoint_s3_uri", spec.checkpoint_s3_uri)
    if not spec.checkpoint_local_path.startswith("/"):
        out.append(Problem("checkpoint_local_path", f"{spec.checkpoint_local_path!r} is not an absolute path in the container.", "use /opt/ml/checkpoints."))
    for name, channel in spec.inputs.items():
        path = f"inputs.{name}"
        if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,64}", name):
            out.append(Problem(path, f"channel name {name!r} is not valid.", "use 1-64 letters, digits, '.', '-' or '_'."))
        if name == "code" and spec.security.network_isolation:
            out.append(Problem(path, "with network_isolation the SDK mounts the job's code as channel 'code'.", "rename the channel."))
        if channel.uri.startswith("s3://"):
            out += _check_s3_uri(f"{path}.uri", channel.uri)
        elif "://" in channel.uri:
            out.append(Problem(f"{path}.uri", f"{channel.uri!r}: only s3:// URIs and local directories are supported.", "upload the data to S3 or give a local directory."))
        elif manifests.is_manifest(channel.uri) or channel.s3_data_type == "ManifestFile":
            out += manifests.problems(f"{path}.uri", channel.uri) if manifests.is_manifest(channel.uri) else [
                Problem(f"{path}.s3_data_type", f"is ManifestFile, but {channel.uri!r} is not a manifest file.",
                        "name a *.manifest file, or use S3Prefix for a folder.")]
        elif _meant_s3(channel.uri):  # read as a local path, but the user wrote an S3 URI with a slash missing
            out.append(Problem(f"{path}.uri", f"{channel.uri!r} is neither an s3:// URI nor a local directory.",
                               f"did you mean {_meant_s3(channel.uri)!r}?"))
        elif not Path(channel.uri).expanduser().exists():
            out.append(Problem(f"{path}.uri", f"local directory {channel.uri!r} does not exist.", "create it, fix the path, or give an s3:// URI."))
    return out


def check_security(spec: JobSpec) -> list[Problem]:
    out = []
    s = spec.security
    if bool(s.subnets) != bool(s.security_group_ids):
        missing = "security_group_ids" if s.subnets else "subnets"
        out.append(Problem(f"security.{missing}", "a VPC job needs both subnets and security_group_ids.", f"add security.{missing}, or remove the other."))
    for i, subnet in enumerate(s.subnets):
        if not SUBNET_ID.fullmatch(subnet):
            out.append(Problem(f"security.subnets.{i}", f"{subnet!r} is not a subnet ID.", "use IDs like subnet-0abc1234def567890."))
    for i, group in enumerate(s.security_group_ids):
        if not SECURITY_GROUP_ID.fullmatch(group):
            out.append(Problem(f"security.security_group_ids.{i}", f"{group!r} is not a security group ID.", "use IDs like sg-0abc1234def567890."))
    for field in ("volume_kms_key", "output_kms_key"):
        key = getattr(s, field)
        if key is not None and not KMS_KEY.fullmatch(key):
            out.append(Problem(f"security.{field}", f"{key!r} is not a KMS key ID, key ARN or alias.", "use a key ID, arn:aws:kms:...:key/..., or alias/name."))
    return out


def check_metrics(spec: JobSpec) -> list[Problem]:
    out = []
    names = set()
    for i, metric in enumerate(spec.metric_definitions):
        path = f"metric_definitions.{i}"
        if metric.name in names:
            out.append(Problem(f"{path}.name", f"{metric.name!r} is defined twice.", "give each metric a unique name."))
        names.add(metric.name)
        try:
            groups = re.compile(metric.regex).groups
        except re.error as exc:
            out.append(Problem(f"{path}.regex", f"{metric.regex!r} is not a valid regular expression ({exc}).", "fix the expression."))
            continue
        if groups < 1:
            out.append(Problem(f"{path}.regex", f"{metric.regex!r} has no capture group; SageMaker records the first group as the value.",
                               "wrap the number in parentheses, e.g. loss=([0-9.eE+-]+)."))
    return out


def check_tracking(spec: JobSpec) -> list[Problem]:
    """One MLflow server at most: SageMaker's managed one or another."""
    mlflow = spec.tracking.mlflow if spec.tracking is not None else None
    if mlflow is not None and mlflow.tracking_server_arn and mlflow.tracking_uri:
        return [Problem("tracking.mlflow", "names two servers: tracking_server_arn and tracking_uri.",
                        "keep tracking_server_arn for SageMaker managed MLflow, or tracking_uri for any other server.")]
    return []
