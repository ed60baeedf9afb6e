"""Installable anywhere: smjobs' wheel in a new virtualenv, used from an empty folder holding decoy ``jobs/``,
``infra/`` and ``entry_points/`` packages: the CLI validates, plans, runs locally, dry-runs and submits to a
moto_server, and the Python API imports as ``smjobs``.

The wheel is built from a copy of the repository (no build isolation, nothing downloaded) and installed with
``--no-deps``; its dependencies (torch, the SDK, the container toolkit) come from this test environment's
site-packages through a ``.pth`` file, which does not run this environment's editable-install hooks, so ``smjobs``
itself can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DECOY = "raise ImportError('the decoy {name}/ in the working directory was imported')\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """smjobs' wheel, built from a copy of the repository."""
    work = tmp_path_factory.mktemp("wheel")
    copy = work / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", "*.egg-info",
                                                              "build", "dist", ".pytest_cache", ".ruff_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            str(copy), "-w", str(work / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next((work / "dist").glob("smjobs-*.whl"))


def test_the_wheel_ships_its_type_hints_and_license_and_no_build_metadata(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "smjobs/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    # setuptools' egg-info, written into entry_points/ while the wheel is built, is not the package's data
    assert not [name for name in names if ".egg-info" in name]
    assert "smjobs/entry_points/train.py" in names and "smjobs_runtime.py" in names


def layered_venv(target: Path, base_purelib: str) -> Path:
    """A new virtualenv that sees ``base_purelib``'s packages through a ``.pth`` file (whose editable-install hooks
    do not run there); returns its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    purelib = Path(sysconfig.get_paths(vars={"base": str(target), "platbase": str(target)})["purelib"])
    (purelib / "_test_dependencies.pth").write_text(base_purelib + "\n")
    return target / "bin" / "python"


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """The bin folder of a new virtualenv with smjobs installed from its wheel."""
    python = layered_venv(tmp_path_factory.mktemp("wheel-env") / "venv", sysconfig.get_paths()["purelib"])
    target = python.parent.parent
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                                "--disable-pip-version-check", str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    return target / "bin"


@pytest.fixture
def decoy_dir(tmp_path) -> Path:
    """An empty working folder except for packages named like the repository's top-level folders."""
    folder = tmp_path / "cwd"
    for name in ("jobs", "infra", "entry_points"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(DECOY.format(name=name))
    (folder / "jobs" / "spec.py").write_text(DECOY.format(name="jobs"))
    return folder


def run(bin_dir: Path, *args, cwd: Path, env=None):
    environ = {**os.environ, "COLUMNS": "200", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=300)


def test_the_python_api_comes_from_the_wheel_whatever_the_working_directory_holds(wheel_env, decoy_dir):
    code = ("import json, sys, smjobs, smjobs_runtime\n"
            "from smjobs import JobSpec, build_request, load_spec, plan, validate_spec\n"
            "spec = load_spec('ddp_mlp')\n"
            "print(json.dumps([smjobs.__file__, smjobs_runtime.__file__, build_request(spec).entry_point,\n"
            "                  sorted(m for m in ('jobs', 'infra', 'entry_points', 'sagemaker', 'boto3') if m in sys.modules)]))")
    done = run(wheel_env, wheel_env / "python", "-c", code, cwd=decoy_dir)
    assert done.returncode == 0, done.stderr
    package, runtime, entry, leaked = json.loads(done.stdout.strip().splitlines()[-1])
    venv_root = str(wheel_env.parent)
    assert package.startswith(venv_root) and runtime.startswith(venv_root)
    assert entry == "train.py" and leaked == []


def test_the_cli_from_the_wheel_validates_plans_runs_and_submits(wheel_env, decoy_dir, user_project, tmp_path, moto_server):
    smjobs = wheel_env / "smjobs"
    validated = run(wheel_env, smjobs, "validate", "ddp_mlp", cwd=decoy_dir)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert str(wheel_env.parent) in validated.stdout.replace("\n", "")  # the bundled scripts of the installed wheel

    planned = run(wheel_env, smjobs, "plan", "auto_gpt_7b", cwd=decoy_dir)
    assert planned.returncode == 0 and "choice" in planned.stdout, planned.stdout + planned.stderr

    ran = run(wheel_env, smjobs, "run", user_project / "job.yaml", "--local", "--processes", "2", "--work-dir",
              tmp_path / "work", cwd=decoy_dir)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert (tmp_path / "work" / "model" / "model.pt").is_file()

    dry = run(wheel_env, smjobs, "submit", "ddp_mlp", "--dry-run", cwd=decoy_dir)
    assert dry.returncode == 0, dry.stderr
    archive = yaml.safe_load(dry.stdout)["source_archive"]
    assert archive["root"].startswith(str(wheel_env.parent))
    assert {"train.py", "smjobs_runtime.py", "common/models.py"} <= {f.split(" (")[0] for f in archive["files"]}

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    deployed = run(wheel_env, smjobs, "infra", "deploy", "--endpoint-url", moto_server, cwd=decoy_dir,
                   env={**env, "AWS_DEFAULT_REGION": "us-east-1"})  # the template ships in the wheel
    assert deployed.returncode == 0 and "BucketName" in deployed.stdout, deployed.stdout + deployed.stderr
    submitted = run(wheel_env, smjobs, "submit", user_project / "job.yaml", "--endpoint-url", moto_server,
                    "--job-name", "from-wheel-1", cwd=decoy_dir, env={**env, "AWS_DEFAULT_REGION": "us-east-1"})
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted from-wheel-1" in submitted.stdout


SDK_ENVS = [Path(p) for p in os.environ.get("SMJOBS_SDK_ENVS", f"{ROOT}/.venv/sdk-v2:{ROOT}/.venv/sdk-v3").split(os.pathsep)]


def _sdk_version(python: Path) -> str:
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("base", SDK_ENVS, ids=[p.name for p in SDK_ENVS])
def test_installed_beside_either_sdk_it_keeps_that_sdk_and_works(base, wheel, decoy_dir, user_project, tmp_path,
                                                                  moto_server):
    """An environment that already has a SageMaker SDK (v2 or v3, as `make test` prepares them; a Studio kernel has
    v3): `pip install smjobs[sdk,local]` resolves against it and leaves it as it was; validate, a dry run, a local run
    and a submission to a moto_server work there; and the submission and SDK-object tests pass there too."""
    python = base / "bin" / "python"
    assert python.exists(), f"{base} is missing: `make test` builds it (a venv with the SDK and torch)"
    before = _sdk_version(python)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "uninstall", "--yes", "smjobs", "smdistributed-stub"], capture_output=True, timeout=300)
    installed = subprocess.run([*pip, "install", f"{wheel}[sdk,local]"], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert _sdk_version(python) == before
    changed = next((line for line in installed.stdout.splitlines() if line.startswith("Successfully installed")), "")
    assert "smjobs-" in changed and "sagemaker-2" not in changed and "sagemaker-3" not in changed, changed
    stub = subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", str(ROOT / "stubs" / "smdistributed-stub")],
                          capture_output=True, text=True, timeout=300)
    assert stub.returncode == 0, stub.stdout[-2000:] + stub.stderr[-2000:]

    bin_dir = base / "bin"
    smjobs = bin_dir / "smjobs"
    assert run(bin_dir, smjobs, "validate", "ddp_mlp", cwd=decoy_dir).returncode == 0
    dry = run(bin_dir, smjobs, "submit", "ddp_mlp", "--dry-run", cwd=decoy_dir)
    assert dry.returncode == 0 and yaml.safe_load(dry.stdout)["create_training_job"]["TrainingJobName"], dry.stderr
    ran = run(bin_dir, smjobs, "run", user_project / "job.yaml", "--processes", "2", "--work-dir", tmp_path / "work",
              cwd=decoy_dir)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    assert run(bin_dir, smjobs, "infra", "deploy", "--endpoint-url", moto_server, cwd=decoy_dir, env=env).returncode == 0
    submitted = run(bin_dir, smjobs, "submit", user_project / "job.yaml", "--endpoint-url", moto_server, "--job-name",
                    f"beside-{base.name}", cwd=decoy_dir, env=env)
    assert submitted.returncode == 0 and f"submitted beside-{base.name}" in submitted.stdout, submitted.stdout + submitted.stderr
    assert "sagemaker.config INFO" not in submitted.stdout + submitted.stderr  # no SDK log lines from smjobs' path

    # the edge and the SDK objects, tested with this environment's SDK (the other major's tests are deselected).
    # Where its SDK is the very version this suite runs with, the whole edge has been tested with it already: the
    # SDK-object tests of that major run again with the wheel's smjobs, and the rest is not run twice.
    edge = ["tests/unit/aws", "tests/unit/inference/test_batch_transform.py", "tests/unit/catalog"]
    major = before.split(".")[0]
    if before == _sdk_version(Path(sys.executable)):
        edge = [f"tests/unit/aws/test_sdk_v{major}.py"]
    workers = ["-n", "2"] if subprocess.run([str(python), "-c", "import xdist"], capture_output=True).returncode == 0 else []
    tested = subprocess.run([str(python), "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *workers, *edge],
                            capture_output=True, text=True, cwd=ROOT, timeout=1200,
                            env={k: v for k, v in os.environ.items() if k != "SMJOBS_SDK_ENVS"})
    summary = tested.stdout.strip().splitlines()[-1] if tested.stdout.strip() else tested.stderr[-2000:]
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary
    # this major's SDK-object tests ran there and passed (the other major's are deselected, never skipped)
    passed = [line.split()[1] for line in tested.stdout.splitlines() if line.startswith("PASSED ")]
    assert any(name.startswith(f"tests/unit/aws/test_sdk_v{major}.py::") for name in passed), tested.stdout[-3000:]
    assert not any(name.startswith(f"tests/unit/aws/test_sdk_v{5 - int(major)}.py::") for name in passed)
