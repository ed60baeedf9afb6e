"""Makes ``import torch.sagemaker`` find the stub's SMP v2 stand-in (``_torch_sagemaker_stub``).

Imported at every interpreter start by ``smdistributed_stub.pth``, so it imports nothing but ``sys`` until a
script asks for ``torch.sagemaker``. The finder goes last on ``sys.meta_path``: a real ``torch/sagemaker``
package (SageMaker's SMP v2 images install it into torch itself) is found by the normal path finder first and
this one is never asked. Submodules (``torch.sagemaker.delayed_param``...) are found through the package's
``__path__`` by the normal machinery.
"""

import sys

NAME = "torch.sagemaker"


class TorchSagemakerStubFinder:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname != NAME:
            return None
        import importlib.util
        from pathlib import Path

        package = Path(__file__).resolve().with_name("_torch_sagemaker_stub")
        return importlib.util.spec_from_file_location(NAME, package / "__init__.py",
                                                      submodule_search_locations=[str(package)])


if not any(getattr(f, "__name__", "") == TorchSagemakerStubFinder.__name__ for f in sys.meta_path):
    sys.meta_path.append(TorchSagemakerStubFinder)
