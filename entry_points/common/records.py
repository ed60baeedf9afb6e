"""The records of an inference input and their assignment to ranks (standard library only, plus torch for .pt).

A record is one non-empty line of a JSON Lines file, one line of a CSV file after its header (no newlines inside
fields), or one row of a ``.pt`` file's tensor. Every record has a global index (files in sorted path order, then
position) and an id: the record's own (``id_field``) when it has one, else ``<file>:<position>``.

The assignment splits the global order into one contiguous range per rank, balanced by record count (sizes differ
by at most one, whatever the files), then each range into parts of at most ``part_records``: the unit of work a
rank writes atomically and marks done. A scan also keeps the byte offset of every ``INDEX_STRIDE``-th line, so
that a part in the middle of a large file is read without reading the file from its start.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

SUFFIXES = (".jsonl", ".csv", ".pt")
INDEX_STRIDE = 1024


@dataclass(frozen=True)
class InputFile:
    path: str
    """Relative to the input folder, ``/``-separated."""
    records: int
    size_bytes: int
    mtime_ns: int
    offsets: tuple[int, ...] = ()
    """Byte offset of records 0, INDEX_STRIDE, 2 x INDEX_STRIDE, ... (text files)."""
    header: str = ""
    """A CSV file's header line."""


def _scan_text(path: Path, csv_file: bool) -> tuple[int, tuple[int, ...], str]:
    count, offsets, header = 0, [], ""
    with path.open("rb") as f:
        if csv_file:
            header = f.readline().decode().rstrip("\r\n")
        while True:
            at = f.tell()
            line = f.readline()
            if not line:
                break
            if not line.strip():
                continue
            if count % INDEX_STRIDE == 0:
                offsets.append(at)
            count += 1
    return count, tuple(offsets), header


def scan(root: Path) -> list[InputFile]:
    """Every input file under ``root`` with its record count (sorted by path)."""
    files = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix in SUFFIXES):
        stat = path.stat()
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".pt":
            files.append(InputFile(rel, len(_load_pt(path)["x"]), stat.st_size, stat.st_mtime_ns))
        else:
            count, offsets, header = _scan_text(path, path.suffix == ".csv")
            files.append(InputFile(rel, count, stat.st_size, stat.st_mtime_ns, offsets, header))
    return files


def _load_pt(path: Path) -> dict:
    import torch

    data = torch.load(path, weights_only=True)
    return data if isinstance(data, dict) else {"x": data}


def assignment(files: list[InputFile], part_records: int) -> dict:
    """The input cut into parts of ``part_records`` consecutive records: ``{"total", "files", "parts": [{part, start,
    stop}]}`` with global record indices (stop exclusive), parts numbered in input order. No part belongs to a rank:
    ranks claim them as they go (``infer.claimed``), so the cut holds for any number of processes."""
    total = sum(f.records for f in files)
    parts = [{"part": number, "start": first, "stop": min(first + part_records, total)}
             for number, first in enumerate(range(0, total, part_records))]
    return {"total": total, "part_records": part_records, "files": [asdict(f) for f in files], "parts": parts}


def same_input(saved: dict, files: list[InputFile]) -> bool:
    """Whether the input is what ``saved`` was assigned from (paths, sizes, modification times)."""
    def key(f):
        return (f["path"], f["size_bytes"], f["mtime_ns"], f["records"])

    return [key(f) for f in saved["files"]] == [key(asdict(f)) for f in files]


@dataclass(frozen=True)
class Record:
    index: int
    id: str
    value: object
    """The record's input (a list of numbers or a tensor), or None when it could not be read."""
    error: str = ""


def parse_json(line: str, where: str, input_field: str, id_field: str) -> tuple[str, object, str]:
    """(id, input, error) of one JSON Lines record (``where`` is its id when it has none). serve.py reads request
    bodies with it too, so both inference backends refuse the same records for the same reasons."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return where, None, f"not JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(data, dict) or input_field not in data:
        return where, None, f"no {input_field!r} field"
    rid = str(data[id_field]) if id_field in data else where
    return rid, data[input_field], ""


def _parse_csv(line: str, header: list[str], where: str, id_field: str) -> tuple[str, object, str]:
    row = next(csv.reader(io.StringIO(line)))
    if len(row) != len(header):
        return where, None, f"{len(row)} fields where the header has {len(header)}"
    named = dict(zip(header, row, strict=True))
    rid = named.pop(id_field, where)
    return (rid, *numbers(named.values()))


def numbers(fields) -> tuple[list[float] | None, str]:
    """(the CSV fields as numbers, error)."""
    try:
        return [float(v) for v in fields], ""
    except ValueError as exc:
        return None, f"not a number: {exc}"


def read(root: Path, plan: dict, start: int, stop: int, *, input_field: str = "inputs", id_field: str = "id"):
    """Records ``start`` to ``stop`` (global indices) in order; unreadable ones carry their error."""
    first = 0
    for f in plan["files"]:
        last = first + f["records"]
        lo, hi = max(start, first), min(stop, last)
        if lo < hi:
            yield from _read_file(Path(root) / f["path"], f, lo - first, hi - first, first, input_field, id_field)
        first = last
        if first >= stop:
            break


def _read_file(path: Path, f: dict, lo: int, hi: int, base: int, input_field: str, id_field: str):
    if path.suffix == ".pt":
        data = _load_pt(path)
        ids = data.get("ids")
        for i in range(lo, hi):
            yield Record(base + i, str(ids[i]) if ids is not None else f"{f['path']}:{i}", data["x"][i])
        return
    header = next(csv.reader([f["header"]])) if path.suffix == ".csv" else []
    block = lo // INDEX_STRIDE
    position = block * INDEX_STRIDE
    with path.open("rb") as handle:
        handle.seek(f["offsets"][block])
        for raw in handle:
            if not raw.strip():
                continue
            if position >= hi:
                break
            if position >= lo:
                where = f"{f['path']}:{position}"
                try:
                    line = raw.decode().rstrip("\r\n")
                except UnicodeDecodeError:
                    yield Record(base + position, where, None, "not UTF-8 text")
                    position += 1
                    continue
                if path.suffix == ".csv":
                    rid, value, error = _parse_csv(line, header, where, id_field)
                else:
                    rid, value, error = parse_json(line, where, input_field, id_field)
                yield Record(base + position, rid, value, error)
            position += 1
