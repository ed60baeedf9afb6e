"""A timeline model of pipeline schedules: which stage computes what, when, and how much of the time is bubble.

Each pipeline rank runs its operations in the order its schedule prescribes; an operation starts when the rank
is free and its inputs exist (the previous stage's forward of that micro-batch, the next stage's backward).
Durations are in units of one forward of a rank's whole share of the model: backward costs ``backward_cost``
(2 by default: input and weight gradients, 1 each). Zero-bubble schedules split the backward into input (I) and weight (W) gradients and run a
pending W whenever the next operation in order is not ready yet.

Pure Python; the same model gives the instance planner its bubble term. ``schedule_render`` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smjobs.spec.strategies import PIPELINE_SCHEDULES

ZERO_BUBBLE = ("InterleavedZeroBubble", "ZBVZeroBubble", "DualPipeV")


@dataclass(frozen=True)
class Slot:
    rank: int
    kind: str
    """F (forward), B (full backward), I (input gradient) or W (weight gradient)."""
    microbatch: int
    stage: int
    start: float
    end: float


@dataclass(frozen=True)
class Timeline:
    schedule: str
    ranks: int
    microbatches: int
    virtual_stages: int
    slots: tuple[Slot, ...]

    @property
    def makespan(self) -> float:
        return max(s.end for s in self.slots)

    @property
    def bubble_fraction(self) -> float:
        """Share of rank-time spent idle between the first operation and the last."""
        busy = sum(s.end - s.start for s in self.slots)
        return 1 - busy / (self.ranks * self.makespan)


def theoretical_bubble(schedule: str, ranks: int, microbatches: int, virtual_stages: int = 1) -> float:
    """Closed forms: GPipe/1F1B (p-1)/(m+p-1); interleaved (p-1)/(v*m+p-1); zero-bubble schedules about 0."""
    p, m, v = ranks, microbatches, virtual_stages
    if schedule in ("GPipe", "1F1B"):
        return (p - 1) / (m + p - 1)
    if schedule in ("Interleaved1F1B", "LoopedBFS"):
        return (p - 1) / (v * m + p - 1)
    return 0.0


def stage_of(schedule: str, rank: int, chunk: int, ranks: int) -> int:
    """Global stage index of a rank's chunk: looped placement, or a V for the V-shaped schedules."""
    if schedule in ("ZBVZeroBubble", "DualPipeV"):
        return rank if chunk == 0 else 2 * ranks - 1 - rank
    return chunk * ranks + rank


def _orders(schedule: str, p: int, m: int, v: int) -> list[list[tuple[str, int, int]]]:
    """Per rank, the operations (kind, microbatch, chunk) in the order the schedule runs them."""
    orders = []
    for rank in range(p):
        if schedule == "GPipe":
            ops = [("F", i, 0) for i in range(m)] + [("B", i, 0) for i in range(m)]
        elif schedule in ("1F1B",) or (schedule in ZERO_BUBBLE and v == 1):
            warmup = min(p - rank - 1, m)
            ops = [("F", i, 0) for i in range(warmup)]
            f, b = warmup, 0
            while b < m:
                if f < m:
                    ops.append(("F", f, 0))
                    f += 1
                ops.append(("B", b, 0))
                b += 1
        elif schedule == "LoopedBFS":
            ops = [("F", i, c) for c in range(v) for i in range(m)] + [("B", i, c) for c in reversed(range(v)) for i in range(m)]
        else:  # Interleaved 1F1B order (Megatron), also the base of the interleaved and V zero-bubble schedules
            forwards = [(i, c) for g in range(0, m, p) for c in range(v) for i in range(g, min(g + p, m))]
            backwards = [(i, c) for g in range(0, m, p) for c in reversed(range(v)) for i in range(g, min(g + p, m))]
            warmup = min((p - rank - 1) * 2 + (v - 1) * p, len(forwards))
            ops = [("F", i, c) for i, c in forwards[:warmup]]
            f, b = warmup, 0
            while b < len(backwards):
                if f < len(forwards):
                    ops.append(("F", *forwards[f]))
                    f += 1
                ops.append(("B", *backwards[b]))
                b += 1
        orders.append(ops)
    return orders


def simulate(schedule: str, ranks: int, microbatches: int, virtual_stages: int = 1, backward_cost: float = 2.0) -> Timeline:
    """Run the schedule on ``ranks`` ranks and return every slot.

    A rank's total work is the same for every schedule (a stage of a rank holding v stages costs 1/v), so
    makespans compare across schedules. GPipe, 1F1B, the interleaved and looped schedules follow their fixed
    operation order; the V-shaped ones (ZBVZeroBubble, DualPipeV) run whichever operation is ready, backward
    first, with at most 2 x ranks micro-batches in flight per rank, as their memory bound allows.
    """
    if schedule not in PIPELINE_SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(PIPELINE_SCHEDULES)}")
    p, m, v = ranks, microbatches, virtual_stages
    if schedule in ("ZBVZeroBubble", "DualPipeV"):
        v = 2
    n_stages = p * v
    f_cost, b_cost = 1.0 / v, backward_cost / v
    split = schedule in ZERO_BUBBLE
    greedy = schedule in ("ZBVZeroBubble", "DualPipeV")
    orders = _orders(schedule, p, m, v) if not greedy else [
        [(k, i, c) for c in range(v) for i in range(m) for k in ("F", "B")] for _ in range(p)
    ]
    done: dict[tuple[str, int, int], float] = {}  # (F|B, microbatch, stage) -> end time
    free = [0.0] * p
    position = [0] * p
    remaining_ops = [list(o) for o in orders]
    in_flight = [0] * p
    pending_w: list[list[tuple[int, int]]] = [[] for _ in range(p)]
    slots: list[Slot] = []

    def ready_time(kind: str, mb: int, stage: int) -> float | None:
        if kind == "F":
            return 0.0 if stage == 0 else done.get(("F", mb, stage - 1))
        needs = [done.get(("F", mb, stage))]
        if stage < n_stages - 1:
            needs.append(done.get(("B", mb, stage + 1)))
        return None if any(t is None for t in needs) else max(needs)

    def candidates(r: int):
        """(start, priority, op) of the operations rank r may run next."""
        ops = remaining_ops[r] if greedy else remaining_ops[r][position[r]:position[r] + 1]
        for op in ops:
            kind, mb, chunk = op
            if greedy and kind == "F" and in_flight[r] >= 2 * p:
                continue
            t = ready_time(kind, mb, stage_of(schedule, r, chunk, p))
            if t is not None:
                yield max(free[r], t), (0 if kind == "B" else 1, mb), op

    while any(remaining_ops[r][position[r]:] if not greedy else remaining_ops[r] for r in range(p)) or any(pending_w):
        best = None
        for r in range(p):
            for start, priority, op in candidates(r):
                if best is None or (start, priority) < (best[0], best[1]):
                    best = (start, priority, r, op)
            if pending_w[r] and (best is None or free[r] < best[0]):
                best = (free[r], (2, 0), r, None)
        if best is None:
            raise RuntimeError(f"{schedule} deadlocked in the model: check its operation order")
        start, _, r, op = best
        if op is None:  # fill an idle gap with a deferred weight-gradient computation
            mb, stage = pending_w[r].pop(0)
            slots.append(Slot(r, "W", mb, stage, start, start + b_cost / 2))
            free[r] = start + b_cost / 2
            continue
        kind, mb, chunk = op
        stage = stage_of(schedule, r, chunk, p)
        if kind == "B" and split:
            end = start + b_cost / 2
            slots.append(Slot(r, "I", mb, stage, start, end))
            pending_w[r].append((mb, stage))
        else:
            end = start + (f_cost if kind == "F" else b_cost)
            slots.append(Slot(r, kind, mb, stage, start, end))
        done[(kind, mb, stage)] = end
        free[r] = end
        if greedy:
            remaining_ops[r].remove(op)
            in_flight[r] += 1 if kind == "F" else -1
        else:
            position[r] += 1
    return Timeline(schedule, p, m, v, tuple(sorted(slots, key=lambda s: (s.rank, s.start))))
