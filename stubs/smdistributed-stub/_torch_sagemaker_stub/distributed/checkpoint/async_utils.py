"""``AsyncCallsQueue``: the asynchronous saves in flight, finished in order."""

from __future__ import annotations

import torch.distributed as dist


class AsyncCallsQueue:
    def __init__(self):
        self._calls: list[tuple[int, object]] = []
        self._next = 0

    def schedule(self, future) -> int:
        index, self._next = self._next, self._next + 1
        self._calls.append((index, future))
        return index

    def get_num_unfinalized_calls(self) -> int:
        return len(self._calls)

    def maybe_finalize_async_calls(self, blocking: bool = True, process_group=None) -> list[int]:
        """Finish the saves that are done (every one, waiting, with ``blocking``); return their indices.

        A save is finished only when every rank of ``process_group`` has finished it, so that a checkpoint is
        complete before any rank counts it done."""
        finished = []
        while self._calls:
            index, future = self._calls[0]
            if not blocking:
                import torch

                done = torch.tensor([int(future.done())])
                if dist.is_initialized():
                    dist.all_reduce(done, op=dist.ReduceOp.MIN, group=process_group)
                if not done.item():
                    break
            future.result()  # raises what the save raised
            self._calls.pop(0)
            finished.append(index)
        return finished


DEFAULT_ASYNC_REQUEST_QUEUE = AsyncCallsQueue()
