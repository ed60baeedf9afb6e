"""``smp.amp``: SMP's mixed-precision helpers. ``GradScaler`` works with mixed precision off (on CPU, where there
is no fp16 training to scale: a pass-through, as torch's own scaler is when disabled); with it on (enabled on a
CUDA device) it raises NotImplementedError, since fp16 training is not emulated. Anything else raises
NotImplementedError naming it."""

import torch


class GradScaler(torch.amp.GradScaler):
    """SMP's loss scaler. Locally: scale 1, ``step`` calls the optimizer's step, ``update`` does nothing."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if enabled and torch.cuda.is_available():
            raise NotImplementedError("smp.amp.GradScaler with mixed precision on is not emulated by smdistributed-stub "
                                      "(fp16 training is not emulated); pass enabled=False")
        super().__init__("cpu", init_scale=init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                         growth_interval=growth_interval, enabled=False)


def __getattr__(name: str):
    if name.startswith("_"):  # dunder and private probes (copy, inspect, pytest) get the usual answer
        raise AttributeError(name)
    raise NotImplementedError(f"smp.amp.{name} is not emulated by smdistributed-stub (fp16/bf16 training is not emulated)")
