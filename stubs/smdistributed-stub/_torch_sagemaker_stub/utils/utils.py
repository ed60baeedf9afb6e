"""``timeit``: how long a block took, printed by one rank."""

from __future__ import annotations

import contextlib
import time


@contextlib.contextmanager
def timeit(enabled: bool = True, msg: str = "", rank: int | None = 0):
    start = time.perf_counter()
    yield
    if enabled and rank in (0, None):
        print(f"{msg} took {time.perf_counter() - start:.3f} s", flush=True)
