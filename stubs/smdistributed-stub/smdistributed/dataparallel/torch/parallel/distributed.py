"""``DistributedDataParallel`` of the pre-1.4 SMDDP API: torch's DDP on the stub's process group."""

from __future__ import annotations

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as _TorchDDP


class DistributedDataParallel(_TorchDDP):
    """AWS's signature; gradients are averaged across all processes exactly as torch's DDP averages them."""

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True, process_group=None,
                 bucket_cap_mb=None):
        if process_group not in (None, "WORLD"):
            raise ValueError("smdistributed.dataparallel supports only group.WORLD as process_group")
        if not dist.is_initialized():
            raise RuntimeError("call smdistributed.dataparallel.torch.distributed.init_process_group() before wrapping the model")
        kwargs = {} if bucket_cap_mb is None else {"bucket_cap_mb": bucket_cap_mb}
        if not broadcast_buffers:  # torch deprecates the flag; pass it only when it changes something
            kwargs["broadcast_buffers"] = False
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)
