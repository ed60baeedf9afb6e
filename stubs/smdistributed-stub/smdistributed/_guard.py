"""The stub's one rule: never load where it would shadow SageMaker's real ``smdistributed``.

Called by the stub's ``smdistributed`` package and again by its ``modelparallel`` and ``dataparallel`` packages: a
script can reach those without the stub's parent package (when the real ``smdistributed`` is a namespace package
that takes the stub's folders in as portions), and the rule must hold then too.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

REAL_DISTRIBUTIONS = ("smdistributed-dataparallel", "smdistributed-modelparallel")
SAGEMAKER_RESOURCE_CONFIG = Path(os.environ.get("SMDISTRIBUTED_STUB_RESOURCE_CONFIG", "/opt/ml/input/config/resourceconfig.json"))
"""The file every SageMaker training container has (the variable moves it, for the stub's own tests)."""


def refuse_to_shadow() -> None:
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
