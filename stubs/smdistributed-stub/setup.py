"""Installs ``smdistributed_stub.pth`` beside the packages: at interpreter start it appends the finder that serves
``torch.sagemaker`` (SMP v2) from ``_torch_sagemaker_stub`` when torch has no ``sagemaker`` package of its own.

A ``.pth`` file is the one place Python runs code before a script's first import, and ``import torch.sagemaker``
is the first line of an SMP v2 script; the stub cannot put files into torch's own package. setuptools copies
only packages and modules, so ``build_py`` adds the file to the wheel. Editable installs (``pip install -e``)
leave it out: install the stub with ``pip install stubs/smdistributed-stub``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "smdistributed_stub.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(str(Path(__file__).with_name(PTH)), str(Path(self.build_lib) / PTH), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithPth})
