"""``setup_transformer_engine_cp_groups``: Transformer Engine's context-parallel groups, not emulated (GPU only)."""

from torch.sagemaker._not_emulated import refuser

__getattr__ = refuser(__name__, {"setup_transformer_engine_cp_groups": "context parallelism runs in Transformer "
                                 "Engine's attention (GPU only); context_parallel_degree > 1 is refused at tsm.init"})
