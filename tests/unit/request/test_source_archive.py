"""What is uploaded is what the user expects: the code archive's manifest, its exclusions, its size limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from smjobs.api import load_spec, source_manifest
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.request import source


@pytest.fixture
def project(user_project) -> Path:
    """The user project with more of what a training repository accumulates around its code."""
    root = user_project
    for junk in (".venv/lib", "notes", "sub/__pycache__", "wandb"):
        (root / junk).mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "notes" / "ideas.txt").write_text("ignored by .smjobsignore\n")
    (root / "weights.ckpt").write_bytes(b"\0" * 10)
    (root / "sub" / "helpers.py").write_text("X = 1\n")
    (root / "wandb" / "run.log").write_text("kept: not a default exclusion\n")
    return root


def test_manifest_keeps_code_and_leaves_out_what_is_not(project):
    manifest = source_manifest(load_spec(project / "job.yaml"))
    assert sorted(manifest.paths()) == ["job.yaml", "model.py", "my_train.py", "smjobs_runtime.py", "sub/helpers.py",
                                        "wandb/run.log"]
    reasons = {e.path: e.reason for e in manifest.excluded}
    assert reasons["runs/"] == reasons[".git/"] == reasons["__pycache__/"] == "left out by default"
    assert reasons[".venv/"] == "a virtual environment"
    assert reasons["data/"] == "input channel 'train' (it travels as a channel)"
    assert reasons["notes/"] == reasons["weights.ckpt"] == "matched by .smjobsignore"
    assert manifest.added == ("smjobs_runtime.py",)
    runtime = next(f for f in manifest.files if f.path == "smjobs_runtime.py")
    assert Path(runtime.origin) == source.runtime_module()


def test_a_folder_with_its_own_runtime_copy_keeps_it(project):
    (project / "smjobs_runtime.py").write_text("# the user's pinned copy\n")
    manifest = source_manifest(load_spec(project / "job.yaml"))
    assert manifest.added == ()
    assert next(f for f in manifest.files if f.path == "smjobs_runtime.py").origin == str(project / "smjobs_runtime.py")


def test_dry_run_lists_files_and_total_size(project):
    result = CliRunner().invoke(app, ["submit", str(project / "job.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    archive = yaml.safe_load(result.stdout)["source_archive"]
    assert archive["total_bytes"] == sum((project / p).stat().st_size for p in
                                         ("job.yaml", "model.py", "my_train.py", "sub/helpers.py", "wandb/run.log")) + \
        source.runtime_module().stat().st_size
    assert [f for f in archive["files"] if f.endswith("[added by smjobs]")] == [
        f"smjobs_runtime.py ({source.human_bytes(source.runtime_module().stat().st_size)}) [added by smjobs]"]
    assert "runs/: left out by default" in archive["excluded"]


def test_over_100_mb_is_refused_naming_the_biggest_files(project):
    for name, size in (("dataset.bin", 90_000_000), ("embeddings.npy", 20_000_000)):
        with open(project / name, "wb") as f:
            f.truncate(size)  # sparse: the size counts, the disk is not used
    with pytest.raises(SpecError) as info:
        load_spec(project / "job.yaml")
    problem = next(p for p in info.value.problems if p.path == "source_dir")
    assert "110.0 MB" in problem.message and "limit 100.0 MB" in problem.message
    assert problem.message.index("dataset.bin (90.0 MB)") < problem.message.index("embeddings.npy (20.0 MB)")
    assert ".smjobsignore" in problem.fix
    (project / ".smjobsignore").write_text("*.bin\n*.npy\n")
    assert load_spec(project / "job.yaml").name == "my-classifier"


def test_an_entry_point_the_ignore_file_leaves_out_is_refused(project):
    (project / ".smjobsignore").write_text("my_*.py\n")
    with pytest.raises(SpecError, match=r"my_train.py would not be in the code archive \(matched by .smjobsignore\)"):
        load_spec(project / "job.yaml")


def test_staged_archive_holds_exactly_the_manifest(project, tmp_path):
    manifest = source_manifest(load_spec(project / "job.yaml"))
    staged = source.stage(manifest, tmp_path / "staged")
    on_disk = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert on_disk == sorted(manifest.paths())
    assert (staged / "my_train.py").read_bytes() == (project / "my_train.py").read_bytes()
