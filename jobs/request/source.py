"""What a job's code archive holds: the source folder, filtered, plus ``smjobs_runtime.py``.

SageMaker's SDK tars ``source_dir`` whole, so a training repository would ship its ``.git``, virtualenvs,
checkpoints and data with every job. smjobs decides the file list once (the manifest): ``submit --dry-run``
prints it, ``submit`` stages exactly those files for the SDK to tar and upload, and a local run copies the same
files into its code directory. Left out, and said so:
- ``DEFAULT_IGNORE`` (version control, caches, ``runs/``, build metadata) and any virtualenv (a folder with a
  ``pyvenv.cfg``);
- input channel directories inside the folder (they travel as channels) and a local run's work directory;
- whatever ``.smjobsignore`` in the folder matches (gitignore syntax, via ``pathspec``).
``smjobs_runtime.py`` is added at the top of the archive unless the folder has its own copy.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

from smjobs.request import manifests

IGNORE_FILE = ".smjobsignore"
DEFAULT_IGNORE = (
    ".git/", ".hg/", ".svn/", "runs/", "__pycache__/", "*.py[cod]", ".ipynb_checkpoints/", ".pytest_cache/",
    ".mypy_cache/", ".ruff_cache/", ".tox/", ".nox/", "*.egg-info/", ".DS_Store", IGNORE_FILE,
)
"""Never code: left out of every archive."""
MAX_ARCHIVE_BYTES = 100 * 1000**2
"""Refuse larger sources (uncompressed): every host downloads and unpacks them before training starts."""
RUNTIME_NAME = "smjobs_runtime.py"


def runtime_module() -> Path:
    """The installed ``smjobs_runtime.py``, which is added to archives that lack one."""
    return Path(importlib.util.find_spec("smjobs_runtime").origin).resolve()


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Path inside the archive (``/``-separated)."""
    bytes: int
    origin: str
    """The file on this machine."""


@dataclass(frozen=True)
class Excluded:
    path: str
    """File or folder (ending in ``/``) relative to the source folder."""
    reason: str


@dataclass(frozen=True)
class SourceManifest:
    root: str
    files: tuple[SourceFile, ...]
    excluded: tuple[Excluded, ...]
    added: tuple[str, ...] = ()
    """Archive paths that do not come from the source folder (smjobs_runtime.py)."""

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def biggest(self, count: int = 5) -> list[SourceFile]:
        return sorted(self.files, key=lambda f: (-f.bytes, f.path))[:count]

    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def to_dict(self) -> dict:
        """What ``submit --dry-run`` prints under ``source_archive``."""
        return {
            "root": self.root,
            "total_bytes": self.total_bytes,
            "total": human_bytes(self.total_bytes),
            "files": [f"{f.path} ({human_bytes(f.bytes)})" + (" [added by smjobs]" if f.path in self.added else "")
                      for f in self.files],
            "excluded": [f"{e.path}: {e.reason}" for e in self.excluded],
        }


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    lines = list(DEFAULT_IGNORE)
    user = root / IGNORE_FILE
    if user.is_file():
        lines += user.read_text().splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def build_manifest(root: Path, *, exclude: Iterable[tuple[Path, str]] = (), add_runtime: bool = True) -> SourceManifest:
    """The files of ``root`` that go into the archive. ``exclude``: (path, reason) of folders to leave out (input
    channels, a local work directory), when they are inside ``root``."""
    root = Path(root).resolve()
    spec = _ignore_spec(root)
    skip_dirs: dict[Path, str] = {}
    skip_files: dict[Path, str] = {}
    for path, reason in exclude:
        path = Path(path).expanduser().resolve()
        if path != root and path.is_relative_to(root):
            (skip_files if path.is_file() else skip_dirs)[path] = reason
    files: list[SourceFile] = []
    excluded: list[Excluded] = []
    for current, dirs, names in os.walk(root):
        here = Path(current)
        kept = []
        for name in sorted(dirs):
            full = here / name
            rel = full.relative_to(root).as_posix()
            if full in skip_dirs:
                excluded.append(Excluded(rel + "/", skip_dirs[full]))
            elif (full / "pyvenv.cfg").exists():
                excluded.append(Excluded(rel + "/", "a virtual environment"))
            elif full.is_symlink():
                excluded.append(Excluded(rel + "/", "a symbolic link to a folder (not followed)"))
            elif spec.match_file(rel + "/"):
                excluded.append(Excluded(rel + "/", _why(rel + "/")))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(names):
            full = here / name
            rel = full.relative_to(root).as_posix()
            if full in skip_files:
                excluded.append(Excluded(rel, skip_files[full]))
            elif spec.match_file(rel):
                excluded.append(Excluded(rel, _why(rel)))
            elif full.is_file():  # a dangling link is not
                files.append(SourceFile(rel, full.stat().st_size, str(full)))
    added: tuple[str, ...] = ()
    if add_runtime and not (root / RUNTIME_NAME).is_file():
        runtime = runtime_module()
        files.append(SourceFile(RUNTIME_NAME, runtime.stat().st_size, str(runtime)))
        added = (RUNTIME_NAME,)
    return SourceManifest(str(root), tuple(files), tuple(excluded), added)


_DEFAULTS = pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORE)


def _why(rel: str) -> str:
    return "left out by default" if _DEFAULTS.match_file(rel) else f"matched by {IGNORE_FILE}"


ADDABLE_SCRIPTS = ("infer.py", "serve.py")
"""Bundled scripts smjobs adds to a user's source folder that lacks them (with their ``common/`` package): the
inference scripts, which load the user's model factory from that folder."""


def bundled_additions(root: Path, entry_point: str) -> list[SourceFile]:
    """The bundled script ``entry_point`` and its ``common/`` package, when ``root`` is a user's folder without
    them; empty otherwise."""
    from smjobs.spec.job import ENTRY_POINTS_DIR

    root = Path(root).resolve()
    if entry_point not in ADDABLE_SCRIPTS or root == ENTRY_POINTS_DIR or (root / entry_point).exists():
        return []
    paths = [ENTRY_POINTS_DIR / entry_point, *sorted((ENTRY_POINTS_DIR / "common").glob("*.py"))]
    return [SourceFile(p.relative_to(ENTRY_POINTS_DIR).as_posix(), p.stat().st_size, str(p)) for p in paths]


def manifest_for(request, *, work_dir: Path | None = None) -> SourceManifest:
    """The archive of a TrainingRequest: its source folder, less local channel folders (and a local run's work dir)."""
    exclude = []
    for name, c in request.inputs.items():
        if c["uri"].startswith("s3://"):
            continue
        exclude.append((Path(c["uri"]), f"input channel {name!r} (it travels as a channel)"))
        if manifests.is_manifest(c["uri"]) and not manifests.problems("", c["uri"]):
            exclude.append((manifests.prefix_folder(c["uri"]), f"input channel {name!r}'s manifest prefix (data)"))
    if work_dir is not None:
        exclude.append((Path(work_dir), "the local run's work directory"))
    return with_bundled(build_manifest(Path(request.source_dir), exclude=exclude), request.entry_point)


def with_bundled(manifest: SourceManifest, entry_point: str) -> SourceManifest:
    """``manifest`` plus the bundled ``entry_point`` and its package, when its folder is a user's that lacks them."""
    extra = bundled_additions(Path(manifest.root), entry_point)
    if not extra:
        return manifest
    return SourceManifest(manifest.root, manifest.files + tuple(extra), manifest.excluded,
                          manifest.added + tuple(f.path for f in extra))


def stage(manifest: SourceManifest, destination: Path) -> Path:
    """Copy the manifest's files into ``destination`` (created empty), as the archive will hold them."""
    destination = Path(destination)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for f in manifest.files:
        target = destination / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.origin, target)
    return destination
