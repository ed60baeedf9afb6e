"""smdistributed-stub: SageMaker's distributed training libraries, emulated on torch.distributed.

The real ``smdistributed`` packages exist only inside SageMaker's GPU training images. This stand-in lets
scripts written for them run unmodified on a laptop or in CI (gloo on CPU, NCCL on GPUs). It refuses to load
where it would shadow the real library: when a real ``smdistributed-dataparallel`` or
``smdistributed-modelparallel`` distribution is installed, or inside a SageMaker training container
(``/opt/ml/input/config/resourceconfig.json`` exists) unless ``SMDISTRIBUTED_STUB_ALLOW=1``.
See README.md for what is emulated, partly emulated and not emulated.
"""

from __future__ import annotations

from smdistributed._guard import REAL_DISTRIBUTIONS, SAGEMAKER_RESOURCE_CONFIG, refuse_to_shadow  # noqa: F401

__stub__ = True
_refuse_to_shadow = refuse_to_shadow  # the name earlier versions exported
refuse_to_shadow()
