"""Splitting the model zoo into consecutive stages, for pipeline and naive model parallelism.

A model is a list of *units* (the smallest pieces a split may separate): for the MLP each Linear (with its
activation), for the GPT the embeddings, each transformer block and the output head. A stage holds a
contiguous run of units and keeps their global indices, so that the union of the stages' state dicts is the
state dict of the whole model (``layers.<i>.<param>``), whichever way it was split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.models import GPT, MLP, Block


class Embed(nn.Module):
    def __init__(self, gpt: GPT):
        super().__init__()
        self.tok, self.pos = gpt.tok, gpt.pos

    def forward(self, tokens):
        return self.tok(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))


class Head(nn.Module):
    def __init__(self, gpt: GPT):
        super().__init__()
        self.ln, self.head = gpt.ln, gpt.head

    def forward(self, x):
        return self.head(self.ln(x))


class LinearAct(nn.Module):
    def __init__(self, linear: nn.Linear, activation: bool):
        super().__init__()
        self.linear = linear
        self.activation = activation

    def forward(self, x):
        x = self.linear(x)
        return F.gelu(x) if self.activation else x


def model_units(args) -> list[nn.Module]:
    """The model of ``args`` (same seed, same initial weights as train.py's) as a list of units."""
    torch.manual_seed(args.seed)
    if args.model == "mlp":
        mlp = MLP(args.in_features, tuple(args.hidden_sizes))
        linears = [m for m in mlp.net if isinstance(m, nn.Linear)]
        return [LinearAct(lin, i < len(linears) - 1) for i, lin in enumerate(linears)]
    if args.model == "gpt":
        gpt = GPT(args.vocab_size, args.d_model, args.n_layers, args.n_heads, args.seq_len)
        return [Embed(gpt), *gpt.blocks, Head(gpt)]
    raise ValueError(f"model {args.model!r} cannot be split into stages; choose mlp or gpt")


def loss_fn(args):
    return MLP.loss if args.model == "mlp" else GPT.loss


def unit_cost(unit: nn.Module) -> float:
    """Multiply-adds per input row: the work a unit adds to its stage (parameters are a poor proxy for
    embeddings, which are lookups)."""
    if isinstance(unit, Embed):
        return float(unit.tok.embedding_dim)
    if isinstance(unit, Block):
        d = unit.ln1.normalized_shape[0]
        return 12.0 * d * d
    return float(sum(m.weight.numel() for m in unit.modules() if isinstance(m, nn.Linear)))


def split_sizes(costs: list[float], n_stages: int) -> list[int]:
    """Units per stage: the contiguous split that minimises the costliest stage (a pipeline runs at the pace
    of its slowest stage). Ties go to the most even unit counts."""
    n = len(costs)
    if n < n_stages:
        raise ValueError(f"{n} layers cannot fill {n_stages} stages")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[k][i]: (max stage cost, spread of sizes) splitting the first i units into k stages
    best = [[(inf, inf)] * (n + 1) for _ in range(n_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(n_stages + 1)]
    best[0][0] = (0.0, 0)
    for k in range(1, n_stages + 1):
        for i in range(k, n - (n_stages - k) + 1):
            for j in range(k - 1, i):
                if best[k - 1][j][0] == inf:
                    continue
                cand = (max(best[k - 1][j][0], prefix[i] - prefix[j]), max(best[k - 1][j][1], abs((i - j) - n / n_stages)))
                if cand < best[k][i]:
                    best[k][i], cut[k][i] = cand, j
    sizes, i = [], n
    for k in range(n_stages, 0, -1):
        sizes.append(i - cut[k][i])
        i = cut[k][i]
    return sizes[::-1]


class Stage(nn.Module):
    """Consecutive units ``first .. first+len-1`` of the model, under their global indices."""

    def __init__(self, units: list[nn.Module], first: int):
        super().__init__()
        self.layers = nn.ModuleDict({str(first + i): unit for i, unit in enumerate(units)})

    def forward(self, x):
        for unit in self.layers.values():
            x = unit(x)
        return x


def build_stages(args, n_stages: int) -> list[Stage]:
    units = model_units(args)
    stages, start = [], 0
    for size in split_sizes([unit_cost(u) for u in units], n_stages):
        stages.append(Stage(units[start:start + size], start))
        start += size
    return stages


def tensor_parallel_blocks(stage: Stage, tp_mesh) -> None:
    """Megatron-style tensor parallelism on the transformer blocks' MLPs: first Linear by columns, second by rows."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    blocks = [u for u in stage.layers.values() if isinstance(u, Block)]
    if not blocks and any(isinstance(u, LinearAct) for u in stage.layers.values()):
        raise ValueError("tensor parallelism is implemented for the gpt model's blocks; use tp_degree 1 with mlp")
    for block in blocks:
        parallelize_module(block.mlp, tp_mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})


def full_state_dict(modules: list[nn.Module]) -> dict[str, torch.Tensor]:
    """Plain CPU tensors of the given stages' parameters (DTensors gathered)."""
    out = {}
    for module in modules:
        for name, value in module.state_dict().items():
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            out[name] = value.detach().cpu().clone()
    return out
