"""The metric lines every training script prints, which the job's metric definitions match on SageMaker."""

from __future__ import annotations

import time


class MetricLog:
    """Prints ``step=N loss=X samples_per_s=Y`` every ``log_every`` steps and at the last; samples/s is measured
    over the steps since the previous line, so start-up does not blur steady-state throughput."""

    def __init__(self, total_steps: int, log_every: int, batch_size: int, enabled: bool = True):
        self.total_steps, self.log_every, self.batch_size, self.enabled = total_steps, log_every, batch_size, enabled
        self.t0, self.seen = time.perf_counter(), 0

    def step(self, done: int, loss: float) -> None:
        """Record that step ``done`` (1-based) finished with ``loss``."""
        self.seen += self.batch_size
        if self.enabled and (done % self.log_every == 0 or done == self.total_steps):
            now = time.perf_counter()
            print(f"step={done} loss={loss:.6f} samples_per_s={self.seen / (now - self.t0):.1f}", flush=True)
            self.t0, self.seen = now, 0
