"""``smp.optimizers``: apex's fused optimizers as SMP ships them. Not emulated: using one raises NotImplementedError."""


def __getattr__(name: str):
    if name.startswith("_"):  # dunder and private probes (copy, inspect, pytest) get the usual answer
        raise AttributeError(name)
    raise NotImplementedError(f"smp.optimizers.{name} is not emulated by smdistributed-stub (apex fused optimizers)")
