"""SMDDP for PyTorch: ``torch_smddp`` (the ``smddp`` backend), ``distributed`` and ``parallel`` (the older API)."""
