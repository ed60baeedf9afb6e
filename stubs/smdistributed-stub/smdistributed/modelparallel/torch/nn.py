"""``smp.nn``: SMP's tensor-parallel and fused modules. None is emulated: using one raises NotImplementedError."""


def __getattr__(name: str):
    if name.startswith("_"):  # dunder and private probes (copy, inspect, pytest) get the usual answer
        raise AttributeError(name)
    raise NotImplementedError(f"smp.nn.{name} is not emulated by smdistributed-stub (tensor-parallel and fused modules)")
