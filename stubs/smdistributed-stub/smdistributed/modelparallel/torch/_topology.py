"""SMP v1's configuration and process topology: pipeline (pp), tensor (tp) and reduced-data (rdp) parallel
coordinates of every rank, placed as ``placement_strategy`` says, and one torch.distributed group per axis.

Placement, as AWS documents it: a permutation of D (reduced data), P (pipeline) and T (tensor); the right-most
letter varies fastest over consecutive ranks. "cluster" is DPT (a model replica on neighbouring ranks),
"spread" is TPD. Derived groups: MP_GROUP = the ranks of one model replica (same rdp coordinate), DP_GROUP = the
ranks holding the same pipeline partition (same pp coordinate). A rank's mp_rank and dp_rank are its index in
those groups.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field

from smdistributed._launch import launch

DEFAULTS = {
    "partitions": 1, "microbatches": 1, "pipeline": "interleaved", "optimize": "memory", "placement_strategy": "cluster",
    "auto_partition": True, "default_partition": 0, "tensor_parallel_degree": 1, "ddp": False,
}
# Accepted, and without effect here: they tune speed, memory or where partitions go, never the numbers.
NO_EFFECT = ("pipeline", "optimize", "auto_partition", "default_partition", "memory_weight", "active_microbatches",
             "deterministic_server", "activation_loading_horizon", "offload_activations", "skip_tracing", "ddp_port",
             "ddp_dist_backend", "contiguous", "trace_device", "checkpoint_attentions",
             # sharded data parallelism's tuning, and SMP's speed modes: nothing to tune without it here
             "sdp_reduce_bucket_size", "sdp_param_persistence_threshold", "sdp_max_live_parameters",
             "sdp_hierarchical_allgather", "sdp_gradient_clipping", "static_mode", "fast_mode")
# Features the stub does not emulate: setting them raises NotImplementedError at smp.init().
NOT_EMULATED = ("fp16", "bf16", "fp16_params", "shard_optimizer_state", "prescaled_batch", "delayed_parameter_initialization",
                "horovod", "sharded_data_parallel_degree")
KNOWN = set(DEFAULTS) | set(NO_EFFECT) | set(NOT_EMULATED) | {"pipeline_parallel_degree"}
PLACEMENTS = {"cluster": "DPT", "spread": "TPD"}


@dataclass(frozen=True)
class Config:
    pp_size: int
    tp_size: int
    microbatches: int
    placement: str
    """A permutation of D, P, T."""
    ddp: bool
    raw: dict = field(default_factory=dict)

    def namespace(self):
        """Every mp_parameters key as an attribute (``smp.state.cfg``): the job's values, else the defaults."""
        from types import SimpleNamespace

        known = {k: False for k in NOT_EMULATED} | {k: None for k in NO_EFFECT} | DEFAULTS
        return SimpleNamespace(**{**known, "sharded_data_parallel_degree": 1, **self.raw,
                                  "pipeline_parallel_degree": self.pp_size, "partitions": self.pp_size})


def _turned_on(key: str, value) -> bool:
    if key == "sharded_data_parallel_degree":
        return value not in (None, 0, 1)
    return bool(value)


def config_from(config: dict | None) -> Config:
    """The configuration ``smp.init`` uses: the job's ``mp_parameters`` (SM_HP_MP_PARAMETERS), with the keys of
    ``config`` (the script's dict) over them."""
    job = json.loads(os.environ.get("SM_HP_MP_PARAMETERS", "{}") or "{}")
    config = {**job, **(config or {})}
    unknown = sorted(set(config) - KNOWN)
    if unknown:
        raise ValueError(f"smp.init: unknown mp_parameters {unknown}; known: {sorted(KNOWN)}")
    set_and_not_emulated = [k for k in NOT_EMULATED if _turned_on(k, config.get(k))]
    if set_and_not_emulated:
        raise NotImplementedError(f"smp.init: mp_parameters {set_and_not_emulated} are not emulated by smdistributed-stub "
                                  "(see its README); remove them for local runs")
    # a key set to off (False, None, 0) asks for nothing, so saying it has no effect would be noise
    ignored = sorted(k for k in config if k in NO_EFFECT and config[k] not in (False, None, 0)
                     and config[k] != DEFAULTS.get(k))
    if ignored and launch().rank == 0:  # once per job, not once per process
        warnings.warn(f"smdistributed-stub: mp_parameters {ignored} are accepted without effect locally "
                      "(they tune speed, memory or placement, not results)", stacklevel=3)
    merged = {**DEFAULTS, **config}
    pp = int(merged.get("pipeline_parallel_degree", merged["partitions"]))
    placement = PLACEMENTS.get(merged["placement_strategy"], merged["placement_strategy"])
    if sorted(placement) != ["D", "P", "T"]:
        raise ValueError(f"smp.init: placement_strategy {merged['placement_strategy']!r} must be cluster, spread or a "
                         "permutation of D, P and T")
    microbatches = int(merged["microbatches"])
    if pp < 1 or microbatches < 1 or int(merged["tensor_parallel_degree"]) < 1:
        raise ValueError("smp.init: partitions, microbatches and tensor_parallel_degree must be >= 1")
    return Config(pp, int(merged["tensor_parallel_degree"]), microbatches, placement, bool(merged["ddp"]), dict(config))


@dataclass(frozen=True)
class Topology:
    rank: int
    world_size: int
    pp_size: int
    tp_size: int
    rdp_size: int
    coords: dict[int, dict[str, int]]
    """Global rank -> {"P": pp_rank, "T": tp_rank, "D": rdp_rank}."""

    def group_of(self, rank: int, fixed: str) -> list[int]:
        """Ranks sharing ``rank``'s coordinates on the axes in ``fixed``."""
        mine = self.coords[rank]
        return sorted(r for r, c in self.coords.items() if all(c[a] == mine[a] for a in fixed))

    def axis_groups(self, fixed: str) -> list[list[int]]:
        """Every group of ranks sharing coordinates on ``fixed``, in a deterministic order (all ranks create them alike)."""
        groups = {tuple(self.group_of(r, fixed)) for r in self.coords}
        return [list(g) for g in sorted(groups)]


def topology(config: Config, rank: int, world_size: int) -> Topology:
    model_parallel = config.pp_size * config.tp_size
    if world_size % model_parallel:
        raise ValueError(f"smp.init: {world_size} processes cannot hold pipeline_parallel_degree {config.pp_size} x "
                         f"tensor_parallel_degree {config.tp_size} = {model_parallel}; use a multiple of it")
    rdp = world_size // model_parallel
    if (rdp > 1 or config.tp_size > 1) and not config.ddp:
        raise ValueError(f"smp.init: {world_size} processes over {model_parallel} model-parallel ranks means data "
                         "parallelism, which SMP v1 runs only with ddp: True in mp_parameters")
    sizes = {"D": rdp, "P": config.pp_size, "T": config.tp_size}
    coords = {}
    for r in range(world_size):
        rest, c = r, {}
        for axis in reversed(config.placement):  # the right-most letter varies fastest
            c[axis] = rest % sizes[axis]
            rest //= sizes[axis]
        coords[r] = c
    return Topology(rank, world_size, config.pp_size, config.tp_size, rdp, coords)


AXES = {  # group name -> axes its members share
    "PP_GROUP": "DT", "TP_GROUP": "DP", "RDP_GROUP": "PT", "MP_GROUP": "D", "DP_GROUP": "P", "WORLD": "",
}


def all_groups(topo: Topology) -> dict[str, list[list[int]]]:
    return {name: topo.axis_groups(axes) for name, axes in AXES.items()}

