"""Data-parallel inference: every rank runs a copy of the model over its share of the records, exactly once.

Runs under ``python`` (one process) and ``torchrun`` (several), on SageMaker as a training job and locally.

    torchrun --nproc_per_node 2 infer.py --input_channel data --model_channel model

- Rank 0 scans the input (JSON Lines, CSV or .pt files, see ``common/records.py``) and writes the assignment to
  the checkpoint folder before any work: the records cut into parts of ``--part_records``. A rerun with the same
  input reuses it, with any number of processes; a changed input is refused.
- Ranks claim the parts not yet done one at a time, in input order, from a counter in torch.distributed's store
  (the rendezvous store every host of the job shares), so a rank whose records cost more simply claims fewer.
- Each rank writes each part atomically (``parts/part-NNNNN.jsonl``) and then its ``.done`` marker; a rerun skips
  finished parts. On SageMaker the checkpoint folder is synced to S3, so finished parts survive an interruption.
- SIGTERM: each rank finishes its current batch, drops the unfinished part and stops; a rerun redoes only that.
- Records that cannot be read or have the wrong shape go to ``errors.jsonl`` with their ids; the job fails only
  when there are more than ``--max_bad_records``.
- At the end rank 0 joins the parts in input order into ``predictions.jsonl`` (one line per record: id, index,
  output, prediction) and checks that outputs plus errors are the inputs, each exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import smjobs_runtime as smr  # noqa: E402
from common import records  # noqa: E402
from common.predict import load  # noqa: E402

ASSIGNMENT = "assignment.json"
PARTS = "parts"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_channel", default="data", help="the channel holding the records")
    p.add_argument("--model_channel", default="model", help="the channel holding model.pt or a training job's model.tar.gz")
    p.add_argument("--model_path", default="", help="a model.pt or model.tar.gz path instead of the model channel")
    p.add_argument("--model_file", default="", help="the model file's name in the model channel (default: model.pt, "
                   "else model.tar.gz)")
    p.add_argument("--model_factory", default="", help="module:function returning your nn.Module; the model file "
                   "then holds its weights (a state dict, or {'model': state_dict})")
    p.add_argument("--input_field", default="inputs", help="JSON Lines: the field holding a record's input")
    p.add_argument("--id_field", default="id", help="JSON Lines and CSV: the field or column holding a record's id")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--part_records", type=int, default=1000, help="records per part (the unit marked done)")
    p.add_argument("--max_bad_records", type=int, default=0, help="fail when more records than this cannot be read")
    p.add_argument("--output_name", default="predictions.jsonl")
    p.add_argument("--dispatch", choices=["dynamic", "fixed"], default="dynamic",
                   help="dynamic: ranks claim the next open part when ready; fixed: rank r takes the r-th contiguous "
                        "share of the open parts (for comparison: a rank whose share costs more finishes last)")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.part_records < 1 or args.max_bad_records < 0:
        p.error("--batch_size and --part_records must be at least 1, --max_bad_records at least 0")
    return args


def model_file(args, env) -> Path:
    """model.pt, from --model_path or the model channel; a model.tar.gz (a training job's output) is unpacked."""
    path = Path(args.model_path) if args.model_path else None
    if path is None:
        if args.model_channel not in env.channels:
            raise ValueError(f"no model: give --model_path or a {args.model_channel!r} channel (have: {sorted(env.channels)})")
        folder = env.channels[args.model_channel]
        names = [args.model_file] if args.model_file else ["model.pt", "model.tar.gz"]
        path = next((folder / n for n in names if (folder / n).exists()), folder / names[0])
    if path.name.endswith(".tar.gz"):
        target = Path(tempfile.mkdtemp(prefix="smjobs-model-"))
        with tarfile.open(path) as archive:
            archive.extractall(target, filter="data")
        path = target / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file (train.py writes model.pt to the model folder)")
    return path


def plan_work(args, env, root: Path) -> dict:
    """The assignment: rank 0 writes it (or checks the saved one still matches the input); every rank gets it."""
    path = env.checkpoint_dir / ASSIGNMENT
    box = [None]
    if env.rank == 0:
        files = records.scan(root)
        plan = None
        if path.exists():
            plan = json.loads(path.read_text())
            if not records.same_input(plan, files):
                raise ValueError(f"the input changed since {path} was written: its parts belong to other records. "
                                 "Use another checkpoint location, or delete the folder to start again.")
            if plan["part_records"] != args.part_records:
                raise ValueError(f"{path} was made for parts of {plan['part_records']} records; this run asks for "
                                 f"{args.part_records}: rerun with --part_records {plan['part_records']}, or delete it.")
        else:
            plan = records.assignment(files, args.part_records)
            env.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_text(json.dumps(plan))
            os.replace(partial, path)
        box[0] = plan
    if env.distributed:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def part_path(env, number: int, suffix: str) -> Path:
    return env.checkpoint_dir / PARTS / f"part-{number:06d}{suffix}"


NEXT_PART = "smjobs/infer/next-part"
"""The store key whose value counts the parts claimed so far in this run."""


def open_parts(plan: dict, env) -> list[dict]:
    """The parts not done before this run, as rank 0 sees them (every host's finished parts are in its checkpoint
    folder after SageMaker's sync), the same list on every rank."""
    box = [[p for p in plan["parts"] if not part_path(env, p["part"], ".done").exists()] if env.rank == 0 else None]
    if env.distributed:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def claimed(todo: list[dict], env, stop, dispatch: str = "dynamic"):
    """The parts of ``todo`` this rank runs: each claimed when the rank is ready for it, by adding one to a counter
    in the job's store; the counter hands every index out once, whichever rank asks. ``fixed``: the rank's
    contiguous share instead, decided up front."""
    if not env.distributed:
        yield from todo
        return
    if dispatch == "fixed":
        share = todo[env.rank * len(todo) // env.world_size:(env.rank + 1) * len(todo) // env.world_size]
        for part in share:
            if stop.requested:
                return
            yield part
        return
    store = dist.distributed_c10d._get_default_store()  # the rendezvous store: one for the whole job
    while not stop.requested:
        index = store.add(NEXT_PART, 1) - 1
        if index >= len(todo):
            return
        yield todo[index]


def run_part(part: dict, plan: dict, root: Path, predictor, args, env, stop) -> bool:
    """Predict one part and write it atomically; False when a stop came first (nothing is kept)."""
    out_path, err_path = part_path(env, part["part"], ".jsonl"), part_path(env, part["part"], ".errors.jsonl")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    outputs, errors, batch = [], [], []

    def error(rec, reason):
        errors.append(json.dumps({"id": rec.id, "index": rec.index, "error": reason}))

    def flush():
        for (rec, _), result in zip(batch, predictor.predict([x for _, x in batch]), strict=True):
            if isinstance(result, str):
                error(rec, result)
            else:
                outputs.append(json.dumps({"id": rec.id, "index": rec.index, **result}))
        batch.clear()

    for rec in records.read(root, plan, part["start"], part["stop"], input_field=args.input_field, id_field=args.id_field):
        if rec.error:
            error(rec, rec.error)
            continue
        try:
            batch.append((rec, predictor.tensor(rec.value)))
        except ValueError as exc:
            error(rec, str(exc))
            continue
        if len(batch) == args.batch_size:
            flush()
            if stop.requested:
                return False
    flush()
    done = {"records": len(outputs), "bad": len(errors), "start": part["start"], "stop": part["stop"]}
    # the marker last: a part is done only when both files are whole, and each file is whole or absent
    for path, text in ((out_path, "".join(line + "\n" for line in outputs)),
                       (err_path, "".join(line + "\n" for line in errors)),
                       (part_path(env, part["part"], ".done"), json.dumps(done))):
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text)
        os.replace(partial, path)
    return True


def join(plan: dict, env, args, part_text) -> dict:
    """Rank 0: the parts in input order into one output, checked record by record against the input."""
    output = env.checkpoint_dir / args.output_name
    errors_path = env.checkpoint_dir / "errors.jsonl"
    expected, good, bad = 0, 0, 0
    with open(output.with_name(output.name + ".partial"), "w") as out, open(errors_path.with_name("errors.jsonl.partial"), "w") as err:
        for part in plan["parts"]:
            text, error_text = part_text(part["part"])
            lines = {}
            for line in text.splitlines():
                lines[json.loads(line)["index"]] = line
            for line in error_text.splitlines():
                lines[json.loads(line)["index"]] = None
                err.write(line + "\n")
                bad += 1
            if sorted(lines) != list(range(part["start"], part["stop"])):
                raise RuntimeError(f"part {part['part']} holds records {sorted(lines)[:5]}..., not {part['start']} to "
                                   f"{part['stop'] - 1}: outputs are not the inputs")
            for index in range(part["start"], part["stop"]):
                if lines[index] is not None:
                    out.write(lines[index] + "\n")
                    good += 1
            expected = part["stop"]
    if expected != plan["total"] or good + bad != plan["total"]:
        raise RuntimeError(f"{good} outputs and {bad} errors for {plan['total']} input records")
    os.replace(output.with_name(output.name + ".partial"), output)
    os.replace(errors_path.with_name("errors.jsonl.partial"), errors_path)
    return {"records": plan["total"], "predicted": good, "bad": bad, "output": str(output), "errors": str(errors_path)}


def collect(ran: list[dict], env):
    """Rank 0's reader of a part's (outputs, errors) text: from disk, one part at a time, when every rank shares
    this host's checkpoint folder; else the parts each rank ran in this run, gathered from the other hosts (held in
    memory), and the earlier runs' parts from rank 0's folder."""
    def read_part(number):
        return part_path(env, number, ".jsonl").read_text(), part_path(env, number, ".errors.jsonl").read_text()

    if not env.distributed or len(env.hosts) == 1:
        return read_part
    mine = {p["part"]: read_part(p["part"]) for p in ran}
    gathered = [None] * env.world_size if env.rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    received = {k: v for d in gathered for k, v in d.items()} if env.rank == 0 else {}
    return lambda number: received[number] if number in received else read_part(number)


def infer(args, env, stop) -> None:
    device = smr.init_distributed(env)
    if args.input_channel not in env.channels:
        raise ValueError(f"--input_channel {args.input_channel!r}: no such channel (have: {sorted(env.channels)})")
    root = env.channels[args.input_channel]
    predictor = load(model_file(args, env), device, args.model_factory)
    plan = plan_work(args, env, root)
    todo = open_parts(plan, env)
    started, done_records, ran = time.perf_counter(), 0, []
    if env.rank == 0:
        print(f"inference: {plan['total']} records in {len(plan['parts'])} parts over {env.world_size} process(es), "
              f"claimed as each process is ready; {len(plan['parts']) - len(todo)} parts already done", flush=True)
    for part in claimed(todo, env, stop, args.dispatch):
        if not run_part(part, plan, root, predictor, args, env, stop):
            break
        ran.append(part)
        done_records += part["stop"] - part["start"]
        print(f"rank {env.rank}: part {part['part']} done ({part['stop'] - part['start']} records)", flush=True)
    stopped = stop.requested
    elapsed = time.perf_counter() - started

    def bad_in(parts):
        return sum(json.loads(part_path(env, p["part"], ".done").read_text())["bad"] for p in parts)

    # this run's parts by whoever ran them; the earlier runs' by rank 0, whose folder holds them all
    open_numbers = {p["part"] for p in todo}
    earlier = [p for p in plan["parts"] if p["part"] not in open_numbers] if env.rank == 0 else []
    bad = bad_in(ran) + bad_in(earlier)
    totals = torch.tensor([float(stopped), float(bad), float(done_records)], device=device)
    wall = torch.tensor([elapsed], device=device)
    if env.distributed:
        dist.all_reduce(totals)
        dist.all_reduce(wall, op=dist.ReduceOp.MAX)
    all_done = int(totals[2].item()) == sum(p["stop"] - p["start"] for p in todo)
    if totals[0].item() > 0 and not all_done:  # a stop that came after the last part stops nothing
        if env.rank == 0:
            print("stopped: finished parts are kept; run again to resume", flush=True)
        return
    if totals[1].item() > args.max_bad_records:
        raise RuntimeError(f"{int(totals[1].item())} records could not be read, more than --max_bad_records "
                           f"{args.max_bad_records}; their ids and reasons are in {env.checkpoint_dir / PARTS}/*.errors.jsonl")
    part_text = collect(ran, env)
    if env.rank == 0:
        summary = join(plan, env, args, part_text)
        done, seconds = int(totals[2].item()), wall.item()
        summary.update(records_per_s=done / seconds if seconds > 0 else 0.0, processes=env.world_size, records_this_run=done)
        summary["this_run"] = this_run(summary)  # the same words wherever the summary is shown (smjobs infer)
        env.output_data_dir.mkdir(parents=True, exist_ok=True)
        (env.output_data_dir / "inference-summary.json").write_text(json.dumps(summary, indent=1))
        print(f"inference done: {summary['records']} records ({summary['bad']} bad); {summary['this_run']}; output "
              f"{summary['output']}", flush=True)


def this_run(summary: dict) -> str:
    """The rate over the records this run predicted (a rerun skips the parts done before, which took no time)."""
    done, before = summary["records_this_run"], summary["records"] - summary["records_this_run"]
    if done == 0:
        return "all were done by an earlier run"
    earlier = f" ({before} done by an earlier run)" if before else ""
    return f"{done} in this run at {summary['records_per_s']:,.1f} records/s{earlier}"


def main(argv=None) -> int:
    stop = smr.StopSignal()  # first: a SIGTERM while torch loads is remembered, not fatal
    args = parse_args(argv)
    env = smr.environment()
    with smr.reporting_failures(env):
        infer(args, env, stop)
    smr.exit_cleanly()
    return 0


if __name__ == "__main__":
    sys.exit(main())
