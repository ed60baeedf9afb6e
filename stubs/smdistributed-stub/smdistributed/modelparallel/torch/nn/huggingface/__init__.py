"""``smp.nn.huggingface.<model>``: SMP's translations between a Hugging Face model's state dict and that of SMP's
distributed transformer that replaces it under tensor parallelism (AWS, SageMaker Developer Guide, "Support for
Hugging Face Transformer Models"). The stub never replaces the module, so the model keeps Hugging Face's layout and
both directions return the state dict as it is (a shallow copy); the hooks that register the distributed modules
are not emulated."""

from __future__ import annotations

from collections import OrderedDict


def unchanged(state_dict, max_seq_len=None):  # noqa: ARG001  (SMP's signature)
    """The state dict in the layout it already has: locally, no module was swapped for SMP's."""
    return OrderedDict(state_dict)


def not_emulated(name: str):
    def refuse(*args, **kwargs):
        raise NotImplementedError(f"smp.nn.huggingface {name} is not emulated by smdistributed-stub (it registers SMP's "
                                  "tensor-parallel modules, which the stub does not have)")

    refuse.__name__ = name
    refuse.__smdistributed_stub_not_emulated__ = True
    return refuse
