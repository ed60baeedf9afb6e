"""``smp.amp``: SMP's mixed-precision helpers. Not emulated: using one raises NotImplementedError."""


def __getattr__(name: str):
    if name.startswith("_"):  # dunder and private probes (copy, inspect, pytest) get the usual answer
        raise AttributeError(name)
    raise NotImplementedError(f"smp.amp.{name} is not emulated by smdistributed-stub (fp16/bf16 training is not emulated)")
