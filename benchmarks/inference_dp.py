"""Data-parallel inference throughput: records/s of 2 processes against 1, side by side in one run.

entry_points/infer.py under torchrun (gloo, one thread per process) over one JSON Lines file, in two cases:
- uniform: a compute-bound MLP, every record the same cost (target >= 1.9x with dynamic dispatch);
- skewed: a model whose cost is in the record (its first value says how many times its 1024-wide layer runs):
  once for the first three quarters of the file, 16 times for the last quarter. Fixed contiguous shares leave the rank with the expensive tail finishing last;
  dynamic dispatch (ranks claim the next part from the job's store) keeps both busy (target >= 1.8x; the fixed
  split's figure is printed beside it).
Runs alternate (1, 2 dynamic, 2 fixed, ...) so that machine noise hits all alike, and each figure is the median over
rounds of the script's own records/s (parts done over the slowest rank's working time; start-up excluded).
Every 2-process output must equal the 1-process output record for record.

    python benchmarks/inference_dp.py [--repeats 3] [--records 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "entry_points"))

from common.models import build_model  # noqa: E402

INFER = ROOT / "entry_points" / "infer.py"
ARGS = {"model": "mlp", "in_features": 256, "hidden_sizes": [1024, 1024, 1024], "seed": 0, "vocab_size": 256,
        "d_model": 64, "n_layers": 2, "n_heads": 4, "seq_len": 32}
TARGETS = {"uniform": 1.9, "skewed": 1.8}
SKEW = 16
"""How many times the skewed case's model runs its layer on an expensive record (once on the others)."""
SKEWED_MODEL = '''
import torch


class CostInTheRecord(torch.nn.Module):
    """Runs its layer as many times as the batch's largest first value says: a record's cost is in the record."""

    def __init__(self):
        super().__init__()
        self.up, self.layer, self.down = torch.nn.Linear(16, 1024), torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 8)

    def forward(self, x):
        h = torch.tanh(self.up(x))
        for _ in range(int(x[:, 0].max().item())):
            h = torch.tanh(self.layer(h))
        return self.down(h)


def build():
    return CostInTheRecord()
'''


def prepare(folder: Path, records: int, case: str) -> tuple[Path, Path]:
    model_dir, data_dir = folder / case / "model", folder / case / "data"
    model_dir.mkdir(parents=True)
    data_dir.mkdir()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    # the skewed case's records are short (16 values): what they cost is the model, not reading them
    rows = torch.randn(records, ARGS["in_features"] if case == "uniform" else 16, generator=generator)
    if case == "uniform":
        torch.save({"model": build_model(argparse.Namespace(**ARGS)).state_dict(), "args": ARGS}, model_dir / "model.pt")
    else:
        (folder / case / "skewed_model.py").write_text(SKEWED_MODEL)
        sys.path.insert(0, str(folder / case))
        from skewed_model import build

        torch.save(build().state_dict(), model_dir / "model.pt")
        rows[:, 0] = 1.0
        rows[3 * records // 4:, 0] = float(SKEW)  # the last quarter costs SKEW times as much
    with open(data_dir / "records.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({"inputs": [round(v, 6) for v in row.tolist()]}) + "\n")
    return model_dir, data_dir


def run(processes: int, model_dir: Path, data_dir: Path, dispatch: str = "dynamic") -> tuple[float, list[str]]:
    factory = ["--model_factory", "skewed_model:build"] if (model_dir.parent / "skewed_model.py").exists() else []
    with tempfile.TemporaryDirectory() as base:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": base,
               "SM_CHANNEL_DATA": str(data_dir), "SM_CHANNEL_MODEL": str(model_dir),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(model_dir.parent), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), str(INFER),
                               "--batch_size", "256", "--part_records", "256", "--dispatch", dispatch, *factory],
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
        summary = json.loads((Path(base) / "output" / "data" / "inference-summary.json").read_text())
        lines = (Path(base) / "checkpoints" / "predictions.jsonl").read_text().splitlines()
    return summary["records_per_s"], lines


def same(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        rx, ry = json.loads(x), json.loads(y)
        if rx["index"] != ry["index"] or not torch.allclose(torch.tensor(rx["output"]), torch.tensor(ry["output"]), atol=1e-5):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=8192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("uniform", "skewed"):
            model_dir, data_dir = prepare(Path(tmp), args.records, case)
            rates: dict[str, list[float]] = {"1": [], "2 dynamic": [], "2 fixed": []}
            identical = True
            for _ in range(args.repeats):
                rate, one = run(1, model_dir, data_dir)
                rates["1"].append(rate)
                for dispatch in ("dynamic", "fixed"):
                    rate, two = run(2, model_dir, data_dir, dispatch)
                    rates[f"2 {dispatch}"].append(rate)
                    identical &= same(one, two)
            medians = {k: statistics.median(v) for k, v in rates.items()}
            print(f"{case} ({args.records} records{f', the layer run {SKEW} times on the last quarter' if case == 'skewed' else ''}):")
            for name, values in rates.items():
                print(f"  {name} process(es): {medians[name]:,.0f} records/s (rounds: {', '.join(f'{r:,.0f}' for r in values)})")
            dynamic, fixed = medians["2 dynamic"] / medians["1"], medians["2 fixed"] / medians["1"]
            target = TARGETS[case]
            print(f"  speed-up: dynamic {dynamic:.2f}x (target >= {target}x: {'met' if dynamic >= target else 'NOT met'}), "
                  f"fixed {fixed:.2f}x; outputs {'identical' if identical else 'DIFFER'} to the 1-process run")


if __name__ == "__main__":
    main()
