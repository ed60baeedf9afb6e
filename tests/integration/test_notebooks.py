"""Every notebook in notebooks/ runs top to bottom without an error (no AWS credentials: moto)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                      for cell in notebook.cells for o in cell.get("outputs", []))
    assert "Traceback" not in outputs
    left = {p.name for p in tmp_path.iterdir()} - {"runs", "figures"}
    assert not left, f"{path.name} wrote {sorted(left)} outside runs/ and figures/ (which .gitignore covers)"
    if path.stem == "01_data_parallel":
        assert "dry run == request sent: True" in outputs
        assert list(tmp_path.glob("runs/*/output/data/loss.png"))
        assert "run: nb-ddp-mlp-" in outputs and "FINISHED" in outputs and "artifacts: ['model/model.pt']" in outputs
    if path.stem == "02_model_parallel":
        assert "same losses: True" in outputs and "dp(2) x pp(8) x tp(1) = 16 != 2 instances x 4 processes = 8" in outputs
        assert "smdistributed-modelparallel:2.4.1-gpu-py311-cu121" in outputs
    if path.stem == "03_choose_instance":
        assert "configurations that fit, cheapest job first" in outputs and "no configuration fits" in outputs
        assert {p.name for p in tmp_path.glob("figures/plan-*.png")} == {"plan-7B.png", "plan-70B.png"}
    if path.stem == "04_your_own_script":
        run_cell = outputs[outputs.find("exit code:"):][:3000]
        assert "exit code: 0" in outputs and "script flags: ['--epochs', '3', '--lr', '0.01']" in outputs, run_cell
        assert "train.py (your script) does not accept --epoch" in outputs and "which cannot read 'fast'" in outputs
        assert "smjobs_runtime.py" in outputs and "input channel 'train' (it travels as a channel)" in outputs
        assert "the job does not fit in GPU memory (traced from plan.model_factory)" in outputs
        assert "valid on the planner's choice" in outputs and "dry run == request sent: True" in outputs
        assert (tmp_path / "runs" / "my-own-script" / "model" / "model.pt").is_file()
    if path.stem == "06_tuning":
        assert "best is the lowest loss: True" in outputs and (tmp_path / "figures" / "tuning.png").is_file()
        assert "tuning.parameters.n_layers: 8..96 ->" in outputs and "tuning.instance_configs.1: 1 x ml.p4d.24xlarge -> removed" in outputs
        assert "tuning.parameters.global_batch_size: [8, 16, 30, 32, 64] -> [8, 16, 32, 64]" in outputs
        assert "ContinuousParameterRanges" in outputs and "instance configs: ['ml.g5.12xlarge', 'ml.g6e.12xlarge']" in outputs
    if path.stem == "05_data_parallel_inference":
        assert "in input order, none lost or repeated: True" in outputs and "1 and 2 processes agree: True" in outputs
        assert "19998 predicted, 2 bad" in outputs and "S3Uri: s3://my-bucket/predictions/" in outputs
        assert "channels: ['data', 'model']" in outputs and (tmp_path / "figures" / "inference-throughput.png").is_file()
        assert "InstanceCount: 2" in outputs and "SplitType: Line" in outputs and "JoinSource: Input" in outputs
        assert "pytorch-inference:2.6.0-gpu-py312" in outputs and "1 instance(s) would sit idle" in outputs


def test_there_are_notebooks():
    assert NOTEBOOKS and all(os.path.getsize(p) > 0 for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_use_only_the_public_api(path):
    """A notebook is what users copy: it imports what ``smjobs`` and its wings export (their ``__all__``), never a
    module inside a wing, and replaces nothing of smjobs'."""
    import ast
    import importlib

    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
    imported, private = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "smjobs":
            exported = set(getattr(importlib.import_module(node.module), "__all__", ()))
            private += [f"{node.module}.{a.name}" for a in node.names if a.name not in exported]
            imported |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            private += [a.name for a in node.names if a.name.startswith("smjobs.")]
    assert imported, "the notebook uses smjobs"
    assert not private, f"{path.name} imports {private}, which smjobs does not export"
    replaced = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in imported]
    assert not replaced, f"{path.name} assigns to an attribute of smjobs' objects"
