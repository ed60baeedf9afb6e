"""A small model zoo and matching synthetic data: an MLP, a small CNN, a residual CNN with batch norm, a
BERT-style transformer encoder classifier and a GPT-style language model.

Data is generated from (seed, step) alone, so every rank can draw the same global batch and keep its
slice; that makes an N-process run comparable with a 1-process run over the same global batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features: int = 32, hidden_sizes=(64, 64), out_features: int = 1):
        super().__init__()
        sizes = [in_features, *hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(sizes[-1], out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

    @staticmethod
    def loss(output, target):
        return F.mse_loss(output, target)


class CNN(nn.Module):
    def __init__(self, channels: int = 1, image_size: int = 16, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * width * (image_size // 4) ** 2, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))

    @staticmethod
    def loss(output, target):
        return F.cross_entropy(output, target)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """A ResNet-style image classifier for the CNN's 16 x 16 single-channel images."""

    def __init__(self, width: int = 16, blocks: int = 2, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    loss = staticmethod(CNN.loss)


class Encoder(nn.Module):
    """A BERT-style encoder (torch's TransformerEncoderLayer) that classifies token sequences."""

    def __init__(self, vocab_size: int = 256, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 seq_len: int = 32, num_classes: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(n_layers)
        )
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens):
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean(dim=1))

    loss = staticmethod(CNN.loss)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.recompute = False
        """Full activation recomputation: keep only the block's input, run the block again in backward."""

    def forward(self, x):
        if self.recompute and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x):
        seq = x.shape[1]
        mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    _tp_plan = {"blocks.*.mlp.0": "colwise", "blocks.*.mlp.2": "rowwise"}
    """Tensor parallelism, in Hugging Face's notation (which SMP v2's stand-in reads too): each block's MLP split
    Megatron-style, the first Linear by columns and the second by rows; attention stays whole."""

    def __init__(self, vocab_size: int = 256, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, seq_len: int = 32):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens):
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))

    @staticmethod
    def loss(output, target):
        return F.cross_entropy(output.flatten(0, 1), target.flatten())


MODELS = ("mlp", "cnn", "resnet", "encoder", "gpt")
MODEL_SHAPING = ("model", "in_features", "hidden_sizes", "vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "optimizer")
"""Arguments a checkpoint's tensors depend on: the zoo's shape arguments and the optimizer (its state's layout)."""


def add_model_arguments(parser, models=MODELS, hidden_sizes=(64, 64), n_layers=2) -> None:
    """The zoo's shape arguments, shared by every training script."""
    from smjobs_runtime import json_list

    parser.add_argument("--model", choices=list(models), default=models[0])
    parser.add_argument("--in_features", type=int, default=32)
    parser.add_argument("--hidden_sizes", type=json_list, default=list(hidden_sizes))
    parser.add_argument("--vocab_size", type=int, default=256)
    parser.add_argument("--d_model", type=int, default=64)
    parser.add_argument("--n_layers", type=int, default=n_layers)
    parser.add_argument("--n_heads", type=int, default=4)
    parser.add_argument("--seq_len", type=int, default=32)


def apply_recompute(model: nn.Module, mode: str) -> nn.Module:
    """``--recompute full``: every transformer block keeps only its input and runs again in backward (the planner's
    "full recompute"); ``none`` keeps every activation. Parameters and numerics are unchanged."""
    for module in model.modules():
        if isinstance(module, Block):
            module.recompute = mode == "full"
    return model


def build_model(args) -> nn.Module:
    if args.model == "mlp":
        return MLP(args.in_features, tuple(args.hidden_sizes))
    if args.model == "cnn":
        return CNN()
    if args.model == "resnet":
        return ResNet()
    if args.model == "encoder":
        return Encoder(args.vocab_size, args.d_model, args.n_layers, args.n_heads, args.seq_len)
    if args.model == "gpt":
        return GPT(args.vocab_size, args.d_model, args.n_layers, args.n_heads, args.seq_len)
    raise ValueError(f"unknown model {args.model!r}; choose one of {', '.join(MODELS)}")


def synthetic_batch(args, step: int, batch_size: int):
    """The global batch for ``step``: the same on every rank."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    if args.model == "mlp":
        x = torch.randn(batch_size, args.in_features, generator=g)
        w = torch.linspace(-1, 1, args.in_features).unsqueeze(1) / args.in_features**0.5
        return x, x @ w + 0.01 * torch.randn(batch_size, 1, generator=g)
    if args.model in ("cnn", "resnet"):
        x = torch.randn(batch_size, 1, 16, 16, generator=g)
        return x, (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, :, :8].mean(dim=(1, 2, 3)) > 0).long()
    tokens = torch.randint(0, args.vocab_size, (batch_size, args.seq_len + 1), generator=g)
    if args.model == "encoder":  # class: which quarter of the vocabulary the sequence's first token is in
        return tokens[:, :-1], tokens[:, 0] * 4 // args.vocab_size
    return tokens[:, :-1], tokens[:, 1:]
