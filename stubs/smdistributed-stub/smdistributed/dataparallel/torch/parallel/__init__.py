"""SMDDP's DistributedDataParallel (the API before v1.4)."""

from smdistributed.dataparallel.torch.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
