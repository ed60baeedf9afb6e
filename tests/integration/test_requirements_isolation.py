"""A requirements.txt in the source folder is installed for the local run, never into smjobs' own environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent('''
    import os
    import tinydep
    import torch.distributed as dist

    dist.init_process_group("gloo")
    print(f"rank={dist.get_rank()} tinydep={tinydep.VERSION} from {tinydep.__file__}", flush=True)
    dist.destroy_process_group()
''')


def test_requirements_go_into_an_isolated_environment_that_reuses_torch(tmp_path):
    package = tmp_path / "tinydep-src"
    (package / "tinydep").mkdir(parents=True)
    (package / "tinydep" / "__init__.py").write_text("VERSION = '0.3'\n")
    (package / "pyproject.toml").write_text('[project]\nname = "tinydep"\nversion = "0.3"\n'
                                            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n')
    project = tmp_path / "project"
    project.mkdir()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            str(package), "-w", str(project / "wheels")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((project / "wheels").glob("tinydep-*.whl")).name
    (project / "requirements.txt").write_text(f"./wheels/{wheel}\n")  # the toolkit runs pip in the code folder
    (project / "train_dep.py").write_text(SCRIPT)
    (project / "job.yaml").write_text(yaml.safe_dump({"name": "with-requirements", "entry_point": "train_dep.py",
                                                      "compute": {"instance_type": "ml.g5.12xlarge"}}))
    cache = tmp_path / "cache"
    env = {**os.environ, "SMJOBS_CACHE_DIR": str(cache), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "COLUMNS": "200"}
    ran = subprocess.run([sys.executable, "-m", "smjobs.cli", "run", str(project / "job.yaml"), "--local", "--processes", "2",
                          "--work-dir", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "requirements.txt: the toolkit installs it into an isolated environment" in ran.stdout
    for rank in (0, 1):  # both workers import the package, from the isolated environment
        assert f"rank={rank} tinydep=0.3 from {cache}" in ran.stdout.replace("\n", "")
    mine = subprocess.run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('tinydep'))"],
                          capture_output=True, text=True, timeout=60)
    assert mine.stdout.strip() == "None", "the package leaked into smjobs' own environment"
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, timeout=60)
    assert "tinydep" not in listed.stdout
