"""Data-parallel inference (entry_points/infer.py) under torchrun: records, not files, are the unit of work.

One JSON Lines file is split over every rank; the output has one line per input record, in input order, equal to a
one-process run; bad records go to an error file with their ids; a rank killed with SIGKILL loses and duplicates
nothing once the job is run again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ENTRY_POINTS = Path(__file__).resolve().parents[2] / "entry_points"
sys.path.insert(0, str(ENTRY_POINTS))

from common.models import build_model  # noqa: E402

IN_FEATURES = 8


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A model.pt as train.py writes it: the state dict and the script's arguments."""
    args = {"model": "mlp", "in_features": IN_FEATURES, "hidden_sizes": [16], "seed": 0, "vocab_size": 256,
            "d_model": 64, "n_layers": 2, "n_heads": 4, "seq_len": 32}
    torch.manual_seed(0)
    model = build_model(argparse.Namespace(**args))
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save({"model": model.state_dict(), "args": args}, folder / "model.pt")
    return folder


def write_records(folder: Path, count: int, bad: dict[int, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(1)
    with open(folder / "records.jsonl", "w") as f:
        for i in range(count):
            if bad and i in bad:
                f.write(bad[i] + "\n")
                continue
            record = {"inputs": torch.randn(IN_FEATURES, generator=generator).tolist()}
            if i % 3 == 0:
                record["id"] = f"customer-{i}"
            f.write(json.dumps(record) + "\n")
    return folder


def launch(tmp_path: Path, name: str, data: Path, model: Path, processes: int, *extra: str, wait: bool = True):
    base = tmp_path / name
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SM_CHANNEL_DATA": str(data), "SM_CHANNEL_MODEL": str(model),
           "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               str(ENTRY_POINTS / "infer.py"), "--part_records", "100", "--batch_size", "32", *extra]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if not wait:
        return proc, base
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out, base


def rank_pid(base: Path, rank: int) -> int:
    """The process of ``rank`` of the run in ``base`` (found by its environment, whatever else runs here)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"infer.py" in cmdline and f"RANK={rank}".encode() in environ and \
                f"SAGEMAKER_BASE_DIR={base}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no rank {rank} of the run in {base}")


def predictions(base: Path) -> list[dict]:
    return [json.loads(line) for line in (base / "checkpoints" / "predictions.jsonl").read_text().splitlines()]


def test_one_file_splits_over_every_rank_and_joins_in_input_order(tmp_path, model_dir):
    data = write_records(tmp_path / "data", 1050)
    code, out, one = launch(tmp_path, "one", data, model_dir, 1)
    assert code == 0, out[-3000:]
    code, out, two = launch(tmp_path, "two", data, model_dir, 2)
    assert code == 0, out[-3000:]
    plan = json.loads((two / "checkpoints" / "assignment.json").read_text())
    assert [(p["start"], p["stop"]) for p in plan["parts"]] == [(i, min(i + 100, 1050)) for i in range(0, 1050, 100)]
    # parts are claimed as the ranks get to them: both ranks get some, and each part is run by exactly one
    claimed = [int(n) for n in re.findall(r"rank \d+: part (\d+) done", out)]  # two ranks' lines may interleave
    assert "rank 1: part" in out and "rank 0: part" in out and sorted(claimed) == list(range(11)), out[-3000:]
    first, second = predictions(one), predictions(two)
    assert [r["index"] for r in second] == list(range(1050)), "every record once, in input order"
    assert [r["id"] for r in second][:4] == ["customer-0", "records.jsonl:1", "records.jsonl:2", "customer-3"]
    for a, b in zip(first, second, strict=True):
        assert a["id"] == b["id"]
        assert torch.allclose(torch.tensor(a["output"]), torch.tensor(b["output"]), atol=1e-6)
    summary = json.loads((two / "output" / "data" / "inference-summary.json").read_text())
    assert summary["records"] == 1050 and summary["bad"] == 0 and summary["records_per_s"] > 0


def test_bad_records_go_to_the_error_file_and_fail_only_past_the_limit(tmp_path, model_dir):
    bad = {5: "{not json", 17: json.dumps({"id": "short-one", "inputs": [1.0, 2.0]}), 300: json.dumps({"x": 1})}
    data = write_records(tmp_path / "data", 400, bad)
    code, out, base = launch(tmp_path, "strict", data, model_dir, 2, "--max_bad_records", "2")
    assert code != 0 and "3 records could not be read, more than --max_bad_records 2" in out
    code, out, base = launch(tmp_path, "lenient", data, model_dir, 2, "--max_bad_records", "3")
    assert code == 0, out[-3000:]
    errors = [json.loads(line) for line in (base / "checkpoints" / "errors.jsonl").read_text().splitlines()]
    assert [(e["index"], e["id"]) for e in errors] == [(5, "records.jsonl:5"), (17, "short-one"), (300, "records.jsonl:300")]
    assert "not JSON" in errors[0]["error"] and "shape [2]" in errors[1]["error"] and "no 'inputs' field" in errors[2]["error"]
    assert [r["index"] for r in predictions(base)] == [i for i in range(400) if i not in bad]


def test_a_killed_rank_loses_and_duplicates_nothing_after_a_rerun(tmp_path, model_dir):
    data = write_records(tmp_path / "data", 3000)
    code, out, reference = launch(tmp_path, "reference", data, model_dir, 2)
    assert code == 0, out[-3000:]
    proc, base = launch(tmp_path, "killed", data, model_dir, 2, "--batch_size", "4", wait=False)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "rank 1: part" in line and sum("rank 1: part" in s for s in seen) == 3:
            os.kill(rank_pid(base, 1), signal.SIGKILL)  # torchrun then ends the other rank, as on SageMaker
            break
    seen += proc.stdout.readlines()
    assert proc.wait(timeout=120) != 0
    with pytest.raises(AssertionError):
        rank_pid(base, 0)  # no rank is left running
    done_before = len(list((base / "checkpoints" / "parts").glob("*.done")))
    assert 3 <= done_before < 30, "".join(seen)[-3000:]
    code, out, base = launch(tmp_path, "killed", data, model_dir, 2)
    assert code == 0, out[-3000:]
    redone = out.count(": part ")
    assert redone == 30 - done_before, "finished parts are not done again: " + out[-3000:]
    assert not list((base / "checkpoints" / "parts").glob("*.partial")), "a write the kill cut short was redone"
    again, expected = predictions(base), predictions(reference)
    assert [r["index"] for r in again] == list(range(3000))
    for a, b in zip(again, expected, strict=True):
        assert a["id"] == b["id"] and torch.allclose(torch.tensor(a["output"]), torch.tensor(b["output"]), atol=1e-6)


def test_csv_and_pt_inputs_and_a_changed_input_is_refused(tmp_path, model_dir):
    data = tmp_path / "data"
    data.mkdir()
    generator = torch.Generator().manual_seed(2)
    rows = torch.randn(50, IN_FEATURES, generator=generator)
    header = ["id", *(f"f{i}" for i in range(IN_FEATURES))]
    lines = [",".join(header)] + [",".join([f"row{i}", *map(str, rows[i].tolist())]) for i in range(50)]
    (data / "a.csv").write_text("\n".join(lines) + "\n")
    torch.save({"x": rows[:20], "ids": [f"t{i}" for i in range(20)]}, data / "b.pt")
    code, out, base = launch(tmp_path, "mixed", data, model_dir, 2)
    assert code == 0, out[-3000:]
    got = predictions(base)
    assert [r["id"] for r in got] == [f"row{i}" for i in range(50)] + [f"t{i}" for i in range(20)]
    assert torch.allclose(torch.tensor(got[3]["output"]), torch.tensor(got[53]["output"]), atol=1e-6)
    (data / "a.csv").write_text("\n".join(lines[:10]) + "\n")  # the input changed under the saved assignment
    code, out, _ = launch(tmp_path, "mixed", data, model_dir, 2)
    assert code != 0 and "the input changed since" in out


def test_sigterm_finishes_the_batch_keeps_finished_parts_and_a_rerun_completes(tmp_path, model_dir):
    data = write_records(tmp_path / "data", 3000)
    proc, base = launch(tmp_path, "stopped", data, model_dir, 2, "--batch_size", "4", wait=False)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "rank 1: part" in line:
            for rank in (0, 1):  # a spot interruption or StopTrainingJob: every rank gets SIGTERM
                os.kill(rank_pid(base, rank), signal.SIGTERM)
            break
    seen += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 0, "".join(seen)[-3000:]
    assert "stopped: finished parts are kept; run again to resume" in "".join(seen)
    parts = base / "checkpoints" / "parts"
    done_before = len(list(parts.glob("*.done")))
    assert 1 <= done_before < 30 and not list(parts.glob("*.partial"))
    assert not (base / "checkpoints" / "predictions.jsonl").exists()
    # the parts belong to no rank: the rerun may have another number of processes and still redoes nothing
    code, out, base = launch(tmp_path, "stopped", data, model_dir, 1)
    assert code == 0 and out.count(": part ") == 30 - done_before, out[-3000:]
    assert [r["index"] for r in predictions(base)] == list(range(3000))
    # the rate is over the records this run predicted, not the ones the first run did
    summary = json.loads((base / "output" / "data" / "inference-summary.json").read_text())
    assert summary["records_this_run"] == 3000 - 100 * done_before
    assert (f"{summary['records_this_run']} in this run at" in out
            and f"({100 * done_before} done by an earlier run)" in out), out[-3000:]


def test_smjobs_infer_local_runs_under_the_container_contract_and_summarises(tmp_path, model_dir):
    write_records(tmp_path / "records", 250, {7: "{broken"})
    spec = tmp_path / "score.yaml"
    spec.write_text(json.dumps({"name": "score", "compute": {"instance_type": "ml.g5.12xlarge"},
                                "inference": {"model": "model/model.pt", "input": "records", "part_records": 50,
                                              "output_path": "s3://bucket/predictions/", "max_bad_records": 1}}))
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, "-m", "smjobs.cli", "infer", str(spec), "--local", "--processes", "2",
                           "--work-dir", str(work)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "250 records (1 bad" in done.stdout and "records/s; predictions:" in done.stdout
    assert [r["index"] for r in predictions(work)] == [i for i in range(250) if i != 7]
    config = json.loads((work / "input" / "config" / "hyperparameters.json").read_text())
    assert config["sagemaker_program"] == '"infer.py"' and config["part_records"] == "50"


FACTORY = '''import torch


def build():
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
'''


def factory_project(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A user's folder: a model factory module, its weights as a bare state dict, three record files of which a
    manifest names two, and a spec."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "mymodel.py").write_text(FACTORY)
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
    torch.save(model.state_dict(), project / "weights.pt")
    generator = torch.Generator().manual_seed(5)
    for name, count in (("a", 40), ("b", 30), ("c", 10)):
        lines = [json.dumps({"inputs": torch.randn(IN_FEATURES, generator=generator).tolist()}) for _ in range(count)]
        if name == "b":
            lines[4] = json.dumps({"inputs": [1.0, 2.0, 3.0]})  # the model refuses it: an error, not a failed job
        (project / "data" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (project / "inputs.manifest").write_text(json.dumps([{"prefix": "data/"}, "a.jsonl", "b.jsonl"]))
    (project / "score.yaml").write_text(json.dumps({
        "name": "score", "compute": {"instance_type": "ml.g5.12xlarge"},
        "inference": {"model": "weights.pt", "model_factory": "mymodel:build", "input": "inputs.manifest",
                      "output_path": "s3://bucket/predictions/", "part_records": 25, "max_bad_records": 1}}))
    return project, model.eval()


def test_a_model_factory_with_weights_over_a_manifest_input(tmp_path):
    project, model = factory_project(tmp_path)
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, "-m", "smjobs.cli", "infer", str(project / "score.yaml"), "--local",
                           "--processes", "2", "--work-dir", str(work)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = predictions(work)
    assert [r["id"] for r in got][:2] == ["a.jsonl:0", "a.jsonl:1"] and len(got) == 69, "a and b only, c is not listed"
    errors = (work / "checkpoints" / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and '"b.jsonl:4"' in errors[0] and "the model failed on it" in errors[0]
    records = [json.loads(line)["inputs"] for name in ("a", "b") for line in
               (project / "data" / f"{name}.jsonl").read_text().splitlines()]
    del records[44]
    with torch.no_grad():
        expected = model(torch.tensor(records))
    assert torch.allclose(torch.tensor([r["output"] for r in got]), expected, atol=1e-6)
    code = sorted(p.relative_to(work / "code").as_posix() for p in (work / "code").rglob("*.py"))
    assert {"infer.py", "common/predict.py", "mymodel.py"} <= set(code), "infer.py is added to the user's folder"
    assert not (work / "code" / "weights.pt").exists() and not (work / "code" / "data").exists()
