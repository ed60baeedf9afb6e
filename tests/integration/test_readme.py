"""Every shell command in README.md runs as written.

The README's fenced ``sh`` blocks are extracted and run verbatim, in order, in one bash (as a reader pastes them
into one terminal), from an empty folder that has only the project's ``.venv`` and the spec files the README
shows (a ``yaml`` block whose first line is ``# <file>.yaml`` is written to that file first). AWS is a moto server
the README itself starts on ``$PORT`` (a free port here). The environment is a new user's: no AWS credentials,
region or SageMaker config (so the SDK's telemetry must stay off by itself).

The first block is the two set-up commands. ``make demo`` runs here; ``make test`` is the command that runs this
test, so it is checked to be exactly the Makefile target and not started again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from smjobs.local.runner import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == kind]


def test_the_readme_starts_with_the_two_commands_and_make_demo_runs():
    text = README.read_text()
    first = blocks("sh")[0]
    assert text.startswith("```sh\n" + first)
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: ", makefile, re.M) and re.search(r"^demo: ", makefile, re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    demo = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "dry run equals the request sent: True" in demo.stdout
    assert "set-up: CloudFormation stack smjobs created" in demo.stdout


def test_every_other_shell_block_runs_verbatim(tmp_path):
    commands = blocks("sh")[1:]
    assert len(commands) >= 6
    work = tmp_path / "reader"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    for body in blocks("yaml"):
        name = body.splitlines()[0].removeprefix("#").strip()
        if body.startswith("# ") and name.endswith(".yaml") and "/" not in name:
            (work / name).write_text(body)
    script = "set -ex\n" + "\n".join(commands)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SAGEMAKER_USER_CONFIG", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
    env.update(PORT=str(free_port()), SMJOBS_STATE_DIR=str(tmp_path / "state"), COLUMNS="160",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=900)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the moto server, if a command failed before `kill %1`
        except ProcessLookupError:
            pass
    tail = output[-6000:]
    assert proc.returncode == 0, tail
    assert "Traceback" not in output, tail
    for expected in ("smjobs 0.", "stack smjobs: created", "first-job: Completed", "nothing to stop",
                     "billable time", "first-job", "bubble:", "configurations that fit", "create_transform_job:",
                     "tuner:", "local run succeeded", "smp v1: gpt, pp 2 x dp 4 x tp 2", "backend smddp",
                     "[rank 0] step=3 loss=", "'FINISHED')]"):
        assert expected in output, f"{expected!r} missing from the README run:\n{tail}"
