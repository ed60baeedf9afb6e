"""Import boundaries: what the uploaded code may import, and what the fast paths must not load."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from smjobs.spec.job import ENTRY_POINTS_DIR

ALLOWED_THIRD_PARTY = {"torch"}
# entry_points' own modules, imported beside the scripts (they run from source_dir)
LOCAL = {"common"} | {p.stem for p in ENTRY_POINTS_DIR.glob("*.py")}


def imported_roots(path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_entry_points_import_only_torch_and_the_standard_library():
    offenders = {}
    for path in ENTRY_POINTS_DIR.rglob("*.py"):
        bad = {r for r in imported_roots(path) if r not in sys.stdlib_module_names
               and r not in ALLOWED_THIRD_PARTY | LOCAL | {"smdistributed", "entry_points"}}
        if path.name == "smjobs_runtime.py":
            bad -= {"mlflow"}  # only inside start_tracking and its run's methods: checked below
        if bad:
            offenders[str(path.relative_to(ENTRY_POINTS_DIR))] = bad
    assert not offenders
    # smjobs_runtime imports MLflow only where a tracking section asks for it, never at import
    tree = ast.parse((ENTRY_POINTS_DIR / "smjobs_runtime.py").read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
           for alias in ([ast.alias(node.module)] if isinstance(node, ast.ImportFrom) and node.module else node.names)}
    assert "mlflow" not in top


def test_smdistributed_is_imported_only_when_the_smddp_backend_is_asked_for():
    source = (ENTRY_POINTS_DIR / "train.py").read_text()
    tree = ast.parse(source)
    top_level = {n.names[0].name for n in tree.body if isinstance(n, ast.Import)}
    assert not any(name.startswith("smdistributed") for name in top_level)


def test_validate_path_does_not_import_the_sdk_or_boto3():
    code = ("import sys, smjobs, smjobs.cli, smjobs.checks.validate, smjobs.request.training; "
            "print(sorted(m for m in ('sagemaker', 'boto3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_package_imports_itself_as_smjobs_only():
    """Installed, jobs/, infra/ and entry_points/ are smjobs, smjobs.infra and smjobs.entry_points: an import of the
    repository folder names would pick up whatever a user's working directory holds under those names."""
    root = ENTRY_POINTS_DIR.parent
    offenders = {}
    for folder in ("jobs", "infra"):
        for path in (root / folder).rglob("*.py"):
            bad = imported_roots(path) & {"jobs", "infra", "entry_points"}
            if bad:
                offenders[str(path.relative_to(root))] = bad
    assert not offenders


def test_the_layer_contracts_hold_and_name_both_modules_of_an_import_that_climbs(tmp_path):
    """`make lint` runs import-linter's contracts (pyproject.toml) over the package as it installs. The tree as it is
    keeps them; one planted import from the spec up to the CLI, and one to boto3 outside aws/, break them, and the
    report names both ends of each."""
    import shutil

    root = ENTRY_POINTS_DIR.parent
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "LINT_IMPORTS": str(lint_imports)}
    kept = subprocess.run([str(root / ".ci" / "lint-imports")], capture_output=True, text=True, env=env, timeout=120)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    copy = tmp_path / "repo"
    for part in ("jobs", "infra", "entry_points", ".ci"):
        shutil.copytree(root / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    job = copy / "jobs" / "spec" / "job.py"
    job.write_text(job.read_text() + "\n\ndef _climb():\n    from smjobs.cli import shared  # noqa\n    import boto3  # noqa\n")
    broken = subprocess.run([str(copy / ".ci" / "lint-imports")], capture_output=True, text=True, env=env, timeout=120)
    assert broken.returncode != 0
    assert "smjobs.spec.job -> smjobs.cli.shared" in broken.stdout, broken.stdout
    assert "smjobs.spec.job -> boto3" in broken.stdout, broken.stdout


def test_every_test_module_has_a_name_of_its_own():
    """The test folders are not packages, so pytest imports each file by its base name: two files of one name stop
    the whole run at collection (``make test-fast`` would not see it, being only tests/unit)."""
    tests = Path(__file__).resolve().parents[2]
    by_name: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        by_name.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert len(by_name) > 50 and {n: p for n, p in by_name.items() if len(p) > 1} == {}
