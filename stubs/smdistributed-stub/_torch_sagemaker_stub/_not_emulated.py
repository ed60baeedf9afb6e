"""Module ``__getattr__`` for SMP v2's GPU-only names: importing one raises NotImplementedError with the reason."""

from __future__ import annotations


def refuser(module: str, names: dict[str, str]):
    def __getattr__(name: str):
        if name in names:
            raise NotImplementedError(f"{module}.{name} is not emulated by smdistributed-stub: {names[name]}")
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__
