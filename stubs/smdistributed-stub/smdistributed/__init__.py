"""smdistributed-stub: SageMaker's distributed training libraries, emulated on torch.distributed.

The real ``smdistributed`` packages exist only inside SageMaker's GPU training images. This stand-in lets
scripts written for them run unmodified on a laptop or in CI (gloo on CPU, NCCL on GPUs). It refuses to load
where it would shadow the real library: when a real ``smdistributed-dataparallel`` or
``smdistributed-modelparallel`` distribution is installed, or inside a SageMaker training container
(``/opt/ml/input/config/resourceconfig.json`` exists) unless ``SMDISTRIBUTED_STUB_ALLOW=1``.
See README.md for what is emulated, partly emulated and not emulated.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

__stub__ = True
REAL_DISTRIBUTIONS = ("smdistributed-dataparallel", "smdistributed-modelparallel")
SAGEMAKER_RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")


def _refuse_to_shadow() -> None:
    for name in REAL_DISTRIBUTIONS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        raise ImportError(f"smdistributed-stub would shadow the real {name} installed here; "
                          "uninstall the stub: pip uninstall smdistributed-stub")
    if SAGEMAKER_RESOURCE_CONFIG.exists() and os.environ.get("SMDISTRIBUTED_STUB_ALLOW") != "1":
        raise ImportError("smdistributed-stub is a local stand-in and does not run inside a SageMaker training container; "
                          "use an image with the real library (SMDDP: PyTorch GPU images; SMP v1: PyTorch <= 2.0 images), "
                          "or set SMDISTRIBUTED_STUB_ALLOW=1 to use the stub anyway")


_refuse_to_shadow()
