"""Peak training memory of this process, measured with torch's own tracker while the real training runs.

``--track_memory true`` makes a training script build its model and run its steps under
``torch.distributed._tools.mem_tracker.MemTracker``, which records every tensor storage the process allocates
(parameters, gradients, optimizer states, activations, communication buckets) by category. The peak is printed as a
metric line and written to ``output/data/memory-rank<N>.json``, so a local CPU run can be compared with the planner's
estimate of the same configuration. On GPUs ``torch.cuda.max_memory_allocated`` says the same, plus allocator
fragmentation.
"""

from __future__ import annotations

import contextlib
import json

MIB = 1024**2


class _NoModuleTracking:
    """Stands in for MemTracker's module tracker. Module-level attribution is not needed for a process total, and
    its backward hooks break torch.distributed.pipelining, whose stages call ``autograd.grad`` on leaf inputs."""

    is_bw = False
    parents: set = set()

    def register_user_hooks(self, *hooks) -> None:
        pass

    def clear_user_hooks(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def tensor_tracker():
    """torch's MemTracker counting every storage by category, without per-module attribution."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker._mod_tracker = _NoModuleTracking()
    return tracker


class MemoryReport:
    """What a tracked run measured; ``step()`` must be called after each optimizer step."""

    def __init__(self, tracker=None):
        self.tracker = tracker
        self.peak_bytes: int | None = None
        self.by_category: dict[str, int] = {}

    def track(self, *modules) -> None:
        """Count ``modules``' parameters, which were allocated before tracking started."""
        if self.tracker is not None:
            self.tracker.track_external(*modules)

    def step(self) -> None:
        """Called after each optimizer step (kept for per-step reports; the process peak needs nothing here)."""

    def finish(self) -> None:
        snapshot = self.tracker.get_tracker_snapshot("peak")
        totals = {str(device): stats for device, stats in snapshot.items()}
        self.peak_bytes = max(stats["Total"] for stats in totals.values())
        busiest = max(totals.values(), key=lambda stats: stats["Total"])
        self.by_category = {getattr(k, "value", str(k)): int(v) for k, v in busiest.items() if k != "Total"}

    def publish(self, env) -> None:
        """Print the peak as a metric line and write it beside the job's other output data."""
        if self.peak_bytes is None:
            return
        print(f"rank={env.rank} peak_memory_mib={self.peak_bytes / MIB:.2f}", flush=True)
        env.output_data_dir.mkdir(parents=True, exist_ok=True)
        path = env.output_data_dir / f"memory-rank{env.rank}.json"
        path.write_text(json.dumps({"rank": env.rank, "peak_bytes": self.peak_bytes, "by_category": self.by_category}))


@contextlib.contextmanager
def tracking(enabled: bool):
    """Yield a MemoryReport; when ``enabled``, everything inside runs under torch's MemTracker."""
    if not enabled:
        yield MemoryReport()
        return
    report = MemoryReport(tensor_tracker())
    with report.tracker:
        yield report
    report.finish()
