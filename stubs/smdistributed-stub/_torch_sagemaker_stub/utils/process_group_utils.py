"""``get_global_ranks``: the global ranks of a process group."""

from __future__ import annotations

import torch.distributed as dist


def get_global_ranks(process_group=None) -> list[int]:
    return dist.get_process_group_ranks(process_group if process_group is not None else dist.group.WORLD)
