"""SMP v2's configuration: the keys AWS documents, where they come from, and the process layout they give.

Sources, in the order SMP v2 applies them (AWS's SMP v2 reference: "the parameters passed through the estimator
take priority and override the ones passed to init()"): the job's ``mp_parameters`` hyperparameter, which the
training toolkit exports as ``SM_HP_MP_PARAMETERS``, over a dict or JSON file given to ``tsm.init(config)``,
over the defaults below.

Layout: the world is (replicate x shard x tp) with tp varying fastest over consecutive ranks, so each block of
``tensor_parallel_degree`` neighbouring ranks holds one model replica's TP shards and takes the same data (AWS's
example scripts shard data with ``dp_rank = rank // tp``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "hybrid_shard_degree": 0, "sm_activation_offloading": True, "activation_loading_horizon": 2,
    "fsdp_cache_flush_warnings": True, "allow_empty_shards": False, "tensor_parallel_degree": 1,
    "context_parallel_degree": 1, "expert_parallel_degree": 1, "random_seed": None,
}
INTEGER_KEYS = ("hybrid_shard_degree", "activation_loading_horizon", "tensor_parallel_degree",
                "context_parallel_degree", "expert_parallel_degree")
# Degrees whose parallelism lives in SMP's own CUDA modules (ring attention over Transformer Engine, SMP's MoE
# all-to-all): the stand-in has no counterpart, so setting one above 1 raises at init.
NOT_EMULATED = {
    "context_parallel_degree": "context parallelism runs in SMP's Transformer Engine attention (GPU only)",
    "expert_parallel_degree": "expert parallelism runs in SMP's MoE modules (GPU only)",
}


@dataclass(frozen=True)
class Layout:
    world_size: int
    replicate_degree: int
    shard_degree: int
    """Processes each parameter is sharded over (SMP's hybrid_shard_degree once resolved)."""
    tp_degree: int
    hybrid_shard_degree: int
    """As configured (0: SMP chooses)."""


def load(config=None, environ=os.environ) -> dict:
    """Every key's value: the job's mp_parameters over ``config`` (a dict or a JSON file's path) over the defaults."""
    given: dict = {}
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"tsm.init: no SMP configuration file at {path}")
        given = json.loads(path.read_text())
    elif config is not None:
        if not isinstance(config, dict):
            raise TypeError(f"tsm.init(config): a dict or a JSON file's path, not {type(config).__name__}")
        given = dict(config)
    job = environ.get("SM_HP_MP_PARAMETERS", "")
    from_job = json.loads(job) if job.strip() else {}
    merged = {**DEFAULTS, **given, **from_job}
    problems = []
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        problems.append(f"unknown SMP v2 parameters {unknown} (known: {sorted(DEFAULTS)})")
    for key in INTEGER_KEYS:
        value = merged.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "hybrid_shard_degree" else 1):
            problems.append(f"{key} must be an integer >= {0 if key == 'hybrid_shard_degree' else 1}, not {value!r}")
    if problems:
        raise ValueError("tsm.init: " + "; ".join(problems))
    on = {key: why for key, why in NOT_EMULATED.items() if merged[key] > 1}
    if on:
        raise NotImplementedError("tsm.init: " + "; ".join(f"{k}={merged[k]}: {why}" for k, why in on.items())
                                  + "; smdistributed-stub does not emulate it. Set it to 1 for local runs.")
    return merged


def layout(params: dict, world_size: int, local_world_size: int) -> Layout:
    """Resolve hybrid_shard_degree as AWS documents it: 0 shards over the whole data-parallel group (with tensor
    parallelism, the largest degree TP leaves), 1 does not shard, N shards over groups of N."""
    tp = params["tensor_parallel_degree"]
    if world_size % tp:
        raise ValueError(f"tsm.init: tensor_parallel_degree {tp} must divide the world size {world_size}")
    if tp > local_world_size:
        raise ValueError(f"tsm.init: tensor_parallel_degree {tp} exceeds the {local_world_size} processes of one host; "
                         "SMP v2 keeps tensor parallelism inside an instance")
    data = world_size // tp
    shard = params["hybrid_shard_degree"] or data
    if data % shard:
        raise ValueError(f"tsm.init: hybrid_shard_degree {shard} must divide the {data} data-parallel processes "
                         f"(world size {world_size} / tensor_parallel_degree {tp})")
    return Layout(world_size, data // shard, shard, tp, params["hybrid_shard_degree"])
