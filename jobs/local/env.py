"""An isolated Python environment for local runs whose code brings its own packages.

SageMaker's container toolkit runs ``pip install -r requirements.txt`` (or ``pip install .`` for a folder with a
``setup.py``) with the interpreter that runs it. In a SageMaker container that is the job's own Python; in a local
run it would be smjobs' environment, which a user's pins would silently change. So a local run whose code has
either file runs the toolkit in a virtual environment of its own, one per source folder, that sees smjobs'
packages (torch, the toolkit) through a ``.pth`` file and installs the code's requirements on top of them: nothing
is downloaded twice, and nothing lands in smjobs' environment. The environment is kept between runs under
``$SMJOBS_CACHE_DIR`` (default ``~/.cache/smjobs``), so a re-run installs only what changed.
"""

from __future__ import annotations

import hashlib
import site
import sys
import sysconfig
import venv
from pathlib import Path

from smjobs.cache import cache_dir

INSTALL_FILES = ("requirements.txt", "setup.py")
"""What makes the container toolkit pip-install before training (its PYTHON_PROGRAM and PYTHON_PACKAGE rules)."""


def installs_packages(code_dir: Path) -> str | None:
    """The file in ``code_dir`` that would make the toolkit install packages, if any."""
    return next((name for name in INSTALL_FILES if (Path(code_dir) / name).is_file()), None)


def _parent_site_packages() -> list[str]:
    """Where this environment's packages live (its own site-packages first)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    return list(dict.fromkeys(p for p in paths if Path(p).is_dir()))


TORCHRUN = """#!{python}
# torchrun under this interpreter, so that its workers run under it too (and see the packages it sees)
import sys
from torch.distributed.run import main
sys.exit(main())
"""


def write_torchrun(bin_dir: Path, python: Path) -> Path:
    """A ``torchrun`` in ``bin_dir`` that runs under ``python``; returns ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "torchrun"
    script.write_text(TORCHRUN.format(python=python))
    script.chmod(0o755)
    return bin_dir


TOOLKIT = """#!{python}
# Written by smjobs for a local run (never uploaded): the container toolkit's `train` entry, as SageMaker's images
# start it (sagemaker_training.cli.train), with one thing done sooner. The PyTorch toolkit imports all of torch in
# this process, about 1.5 s of a local run, only to set SM_DLC_TORCH_VERSION to torch.__version__; the version
# of the torch this interpreter would import is in that package's metadata, so the variable gets the same value
# without the import. Where the metadata is missing, the toolkit sets the variable its own way.
import importlib.metadata
import os
import sys

try:
    TORCH_VERSION = importlib.metadata.version("torch")
except importlib.metadata.PackageNotFoundError:
    TORCH_VERSION = None
if TORCH_VERSION is not None:
    import sagemaker_pytorch_container.training as framework

    def _set_torch_version_environment():
        os.environ["SM_DLC_TORCH_VERSION"] = TORCH_VERSION

    framework._set_torch_version_environment = _set_torch_version_environment

from sagemaker_training.cli.train import main

sys.exit(main())
"""


def write_toolkit_entry(bin_dir: Path, python: Path) -> Path:
    """The container toolkit's ``train`` entry, for ``python``, in ``bin_dir`` (``TOOLKIT``); returns the script."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "train"
    script.write_text(TOOLKIT.format(python=python))
    script.chmod(0o755)
    return script


def environment_root(source_dir: Path) -> Path:
    """Where the isolated environment of ``source_dir`` lives (one per source folder and smjobs Python)."""
    key = f"{Path(source_dir).resolve()}|{sys.executable}"
    return cache_dir() / "envs" / hashlib.sha256(key.encode()).hexdigest()[:16]


SETTLE = '''"""Written by smjobs for a local run (never uploaded): every Python process of the run imports it at start-up.

gloo's worker threads can release a finished collective while the interpreter finalises; the release needs the GIL,
Python ends such threads with a forced unwind, and the process aborts ("terminate called without an active
exception", SIGABRT) after training succeeded. Plain torch scripts hit it now and then on CPU; SageMaker's GPU jobs
use NCCL. At exit, end any process group and give the workers a moment while the interpreter still runs.
"""

import atexit
import importlib.machinery
import importlib.util
import os
import sys


RANK_VARIABLES = ("LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")  # set for the ranks by torchrun and mpirun


def _settle():
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return
    initialized = False
    try:
        initialized = dist.is_available() and dist.is_initialized()
        if initialized:
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001  (nothing at exit may fail the run)
        pass
    # a rank whose script ended its own group still has gloo workers finishing; launchers (torchrun, the toolkit)
    # have no group and are not ranks: they exit at once
    if initialized or any(name in os.environ for name in RANK_VARIABLES):
        import time

        time.sleep(0.2)


atexit.register(_settle)

# this file shadows any sitecustomize of the environment: run that one too
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
'''


def write_settle_hook(folder: Path) -> Path:
    """A ``sitecustomize.py`` in ``folder`` (put it on PYTHONPATH) that lets gloo settle at every process's exit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SETTLE)
    return folder


def isolated_environment(source_dir: Path) -> Path:
    """The Python of the environment for ``source_dir`` (created on first use)."""
    root = environment_root(source_dir)
    python = root / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(root)
    purelib = Path(sysconfig.get_paths(vars={"base": str(root), "platbase": str(root)})["purelib"])
    purelib.mkdir(parents=True, exist_ok=True)
    # appended after the environment's own site-packages: what the code installs wins over smjobs' versions
    (purelib / "_smjobs_parent.pth").write_text("\n".join(_parent_site_packages()) + "\n")
    (root / "SOURCE").write_text(str(Path(source_dir).resolve()) + "\n")
    return python
