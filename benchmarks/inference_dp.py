"""Data-parallel inference throughput: records/s of 2 processes against 1, side by side in one run.

entry_points/infer.py under torchrun (gloo, one thread per process) on a compute-bound MLP over one JSON Lines
file; runs alternate (1, 2, 1, 2, ...) so that machine noise hits both alike, and each figure is the median over
rounds of the script's own records/s (parts done over the slowest rank's working time; start-up excluded).
Every 2-process output must equal the 1-process output record for record. Target: >= 1.8x.

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
TARGET = 1.8


def prepare(folder: Path, records: int) -> tuple[Path, Path]:
    model_dir, data_dir = folder / "model", folder / "data"
    model_dir.mkdir()
    data_dir.mkdir()
    torch.manual_seed(0)
    torch.save({"model": build_model(argparse.Namespace(**ARGS)).state_dict(), "args": ARGS}, model_dir / "model.pt")
    generator = torch.Generator().manual_seed(1)
    rows = torch.randn(records, ARGS["in_features"], generator=generator)
    with open(data_dir / "records.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({"inputs": [round(v, 6) for v in row.tolist()]}) + "\n")
    return model_dir, data_dir


def run(processes: int, model_dir: Path, data_dir: Path) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory() as base:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": base,
               "SM_CHANNEL_DATA": str(data_dir), "SM_CHANNEL_MODEL": str(model_dir)}
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), str(INFER),
                               "--batch_size", "256", "--part_records", "1024"], env=env, capture_output=True, text=True)
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
        model_dir, data_dir = prepare(Path(tmp), args.records)
        one_rates, two_rates, identical = [], [], True
        for _ in range(args.repeats):
            rate, one = run(1, model_dir, data_dir)
            one_rates.append(rate)
            rate, two = run(2, model_dir, data_dir)
            two_rates.append(rate)
            identical &= same(one, two)
    one, two = statistics.median(one_rates), statistics.median(two_rates)
    print(f"1 process:   {one:,.0f} records/s (rounds: {', '.join(f'{r:,.0f}' for r in one_rates)})")
    print(f"2 processes: {two:,.0f} records/s (rounds: {', '.join(f'{r:,.0f}' for r in two_rates)})")
    print(f"speed-up {two / one:.2f}x (target >= {TARGET}x): {'met' if two / one >= TARGET else 'NOT met'}; "
          f"outputs {'identical' if identical else 'DIFFER'} to the 1-process run ({args.records} records)")


if __name__ == "__main__":
    main()
