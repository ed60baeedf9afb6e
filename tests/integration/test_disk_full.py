"""A really full filesystem: checkpoints and the model file written to a 1 MiB tmpfs that runs out of room.

The tmpfs is mounted in a new user and mount namespace (``unshare -rm``), so the test needs no privilege and
leaves no mount behind; the writes fail with the kernel's own ENOSPC, not with a threshold the project chose."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import json, sys
from pathlib import Path
import torch
import smjobs_runtime as smr

env = smr.environment({"SAGEMAKER_BASE_DIR": sys.argv[1]})
out = {}
model = torch.nn.Linear(4, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
smr.save_checkpoint(model, opt, 1, env)
big = torch.nn.Linear(1024, 1024)  # 4 MiB of weights: more than the file system holds
try:
    smr.save_checkpoint(big, torch.optim.SGD(big.parameters(), lr=0.1), 2, env)
except smr.CheckpointError as exc:
    out["checkpoint_error"] = str(exc)
out["latest"] = str(smr.latest_checkpoint(env))
try:
    smr.save_model(env, big.state_dict())
except OSError as exc:
    out["model_error"] = str(exc)
out["model_files"] = sorted(p.name for p in env.model_dir.iterdir())
print(json.dumps(out))
"""


def test_a_full_disk_fails_cleanly_and_keeps_the_last_whole_checkpoint(tmp_path):
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed to mount a small tmpfs without privilege")
    base = tmp_path / "opt_ml"
    base.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = f"mount -t tmpfs -o size=1m tmpfs {base} && exec {sys.executable} {script} {base}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "saving the checkpoint of step 2" in out["checkpoint_error"]
    assert "the disk is full" in out["checkpoint_error"] and "resume skips it" in out["checkpoint_error"], out
    assert "Traceback" not in out["checkpoint_error"], "torch's per-rank traceback is reduced to each rank's error"
    assert Path(out["latest"]).name == "step_00000001", "the incomplete checkpoint must not count as the newest"
    assert "writing the model to" in out["model_error"] and "the disk is full" in out["model_error"], out
    assert out["model_files"] == [], "a model that did not fit leaves neither model.pt nor a partial file"
    assert not any(base.iterdir()), "the tmpfs lived only in the test's mount namespace"
