"""What goes to S3 before a request is sent: the code archive (exactly the manifest's files), local input
channels, and a Batch Transform model archive with its code.

The SageMaker SDK used to do this inside ``fit()`` and ``transform()``; smjobs does it with boto3, at the S3 keys
the dry run already names, so that the request sent is the request printed, whichever SDK major is installed, or
none. Archives are written with a fixed order, owner and timestamp, so the same files give the same bytes.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

from smjobs.request import manifests
from smjobs.request.source import SourceManifest

CODE_ARCHIVE = "sourcedir.tar.gz"
log = logging.getLogger(__name__)
"""The name the SageMaker container toolkit expects (``sagemaker_submit_directory``)."""


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def pack(manifest: SourceManifest, archive: Path, *, under: str = "", extra: tuple[tuple[Path, str], ...] = ()) -> Path:
    """A gzipped tar of the manifest's files (at ``under``/their archive path), plus ``extra`` (path, name) entries
    at the top: the code archive (``under=""``), or a model archive whose code sits in ``code/``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for origin, name in extra:
            tar.add(origin, arcname=name, filter=_reset)
        for f in sorted(manifest.files, key=lambda f: f.path):
            tar.add(f.origin, arcname=f"{under}{f.path}", recursive=False, filter=_reset)
    return archive


def upload_file(s3, path: Path, uri: str) -> str:
    bucket, key = split_uri(uri)
    s3.upload_file(str(path), bucket, key)
    log.debug("uploaded %s to %s (%d bytes)", path, uri, path.stat().st_size)
    return uri


def upload_tree(s3, local: Path, prefix_uri: str) -> list[str]:
    """A local file, or every file under a local folder, under ``prefix_uri`` (a file keeps its name; a folder's
    files keep their paths below it), as the SDK's ``upload_data`` lays them out."""
    local = Path(local)
    prefix = prefix_uri.rstrip("/")
    if local.is_file():
        return [upload_file(s3, local, f"{prefix}/{local.name}")]
    return [upload_file(s3, path, f"{prefix}/{path.relative_to(local).as_posix()}")
            for path in sorted(local.rglob("*")) if path.is_file()]


def upload_channel(s3, local_uri: str, prefix_uri: str, scratch: Path) -> list[str]:
    """A local channel under its prefix: a folder or file as it is, a manifest as the files it names (laid out by
    their keys in ``scratch`` first)."""
    if manifests.is_manifest(local_uri):
        local_uri = str(manifests.materialize(local_uri, scratch, link=False))
    return upload_tree(s3, Path(local_uri), prefix_uri)


def local_channels(request) -> dict[str, tuple[str, str]]:
    """The request's local channels: name -> (local path, the S3 prefix its request names)."""
    out = {}
    for entry in request.create_training_job.get("InputDataConfig", []):
        name = entry["ChannelName"]
        channel = request.inputs.get(name)
        if channel is not None and not channel["uri"].startswith("s3://"):
            out[name] = (channel["uri"], entry["DataSource"]["S3DataSource"]["S3Uri"])
    return out


def upload_job_files(s3, request, manifest: SourceManifest, scratch: Path) -> dict[str, list[str]]:
    """A training request's local channels and its code archive, at the URIs the request names; returns what was
    uploaded, by channel (``code`` for the archive)."""
    uploaded = {}
    for name, (local, prefix) in local_channels(request).items():
        uploaded[name] = upload_channel(s3, local, prefix, scratch / "inputs" / name)
        log.info("channel %s: %d file(s) from %s uploaded to %s", name, len(uploaded[name]), local, prefix)
    archive = pack(manifest, scratch / CODE_ARCHIVE)
    uploaded["code"] = [upload_file(s3, archive, request.code_uri)]
    log.info("code archive: %d file(s), %d bytes, uploaded to %s", len(manifest.files), archive.stat().st_size,
             request.code_uri)
    return uploaded
