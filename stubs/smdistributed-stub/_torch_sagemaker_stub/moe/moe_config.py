"""``MoEConfig``: accepted with AWS's documented defaults; ``tsm.transform(config=MoEConfig(...))`` raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MoEConfig:
    smp_moe: bool = True
    random_seed: int = 12345
    moe_load_balancing: str = "sinkhorn"
    global_token_shuffle: bool = False
    moe_all_to_all_dispatcher: bool = True
    moe_aux_loss_coeff: float = 0.001
    moe_z_loss_coeff: float = 0.001
    use_cpu_initialization: bool = False
    """Not in AWS's reference; AWS's example scripts pass it."""

    def __post_init__(self):
        choices = ("aux_loss", "sinkhorn", "balanced", "none")
        if self.moe_load_balancing not in choices:
            raise ValueError(f"MoEConfig: moe_load_balancing is one of {choices}, not {self.moe_load_balancing!r}")
