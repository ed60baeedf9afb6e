"""``smp.save``, ``smp.load``, ``smp.save_checkpoint`` and ``smp.resume_from_checkpoint``, with SMP's file layout.

Partial files carry the writer's ``mp_rank`` (``<f>_<mp_rank>``); a checkpoint directory holds
``<tag>_partial/`` (model, optimizer and user content per model-parallel rank) or, for a full checkpoint, the
file ``<tag>`` and ``user_content_<tag>``, and a ``newest`` file naming the latest tag. Partial files are written
by the ranks with rdp_rank 0, one per pipeline and tensor-parallel coordinate (``model_<pp>_<tp>.pt``), so that
every rank finds its own on resume; every rank reads.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

from smdistributed.modelparallel.torch import _state


def _mp_rank() -> int:
    return _state.current("smp.save/load").index_in("MP_GROUP")


def _rdp_rank() -> int:
    s = _state.current("smp.save_checkpoint")
    return s.topology.coords[s.topology.rank]["D"]


def save(obj, f: str, partial: bool = True, pickle_module=pickle, pickle_protocol: int = 2, v3: bool = False) -> None:
    """``torch.save`` to ``f`` (``<f>_<mp_rank>`` when partial). ``v3`` (SMP's checkpoint format for tensor
    parallelism) changes nothing here: no module is split."""
    path = f"{f}_{_mp_rank()}" if partial else str(f)
    torch.save(obj, path, pickle_module=pickle_module, pickle_protocol=pickle_protocol)


def load(f: str, map_location=None, pickle_module=None, pickle_load_args=None, partial: bool = True):
    path = f"{f}_{_mp_rank()}" if partial else str(f)
    kwargs = dict(pickle_load_args or {})
    if pickle_module is not None:
        kwargs["pickle_module"] = pickle_module
    return torch.load(path, map_location=map_location, weights_only=False, **kwargs)


def _rank_info() -> str:
    s = _state.current("smp.save_checkpoint")
    c = s.topology.coords[s.topology.rank]
    return f"{c['P']}_{c['T']}"


def save_checkpoint(path, tag: str, partial: bool = True, model=None, optimizer=None, user_content=None,
                    translate_if_full: bool = True, num_kept_partial_checkpoints: int | None = None) -> None:
    """Write a checkpoint of ``model`` and ``optimizer`` (the wrapped ones by default) under ``path``."""
    session = _state.current("smp.save_checkpoint")
    model, optimizer = model or session.model, optimizer or session.optimizer
    root = Path(path)
    if _rdp_rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        if partial:
            folder = root / f"{tag}_partial"
            folder.mkdir(exist_ok=True)
            if model is not None:
                torch.save(model.local_state_dict(), folder / f"model_{_rank_info()}.pt")
            if optimizer is not None:
                torch.save(optimizer.local_state_dict(), folder / f"optimizer_{_rank_info()}.pt")
            if user_content is not None and _mp_rank() == 0 and session.topology.coords[session.topology.rank]["T"] == 0:
                torch.save(user_content, folder / "user_content.pt")
        elif _mp_rank() == 0 and session.topology.coords[session.topology.rank]["T"] == 0:
            torch.save({"model": model.state_dict() if model else None,
                        "optimizer": optimizer.state_dict() if optimizer else None}, root / tag)
            if user_content is not None:
                torch.save(user_content, root / f"user_content_{tag}")
    dist.barrier()
    if session.topology.rank == 0:
        (root / "newest").write_text(tag)
        if partial and num_kept_partial_checkpoints:
            kept = sorted(root.glob("*_partial"), key=lambda p: p.stat().st_mtime)
            for old in kept[:-num_kept_partial_checkpoints]:
                shutil.rmtree(old)
    dist.barrier()


def resume_from_checkpoint(path, tag: str | None = None, partial: bool = True, strict: bool = True,
                           load_optimizer: bool = True, load_sharded_optimizer_state: bool = True,
                           translate_function=None):
    """Load the newest (or ``tag``) checkpoint into the wrapped model and, with ``load_optimizer``, the optimizer;
    return the user content. Nothing is sharded, so ``load_sharded_optimizer_state`` changes nothing.
    ``translate_function`` maps the checkpoint's model state dict to the model's (e.g. a Hugging Face
    checkpoint's, with ``smp.nn.huggingface.gpt2.translate_hf_state_dict_to_smdistributed_gpt2``)."""
    load_optimizer_states = load_optimizer
    translate = translate_function or (lambda state: state)
    session = _state.current("smp.resume_from_checkpoint")
    root = Path(path)
    tag = tag or (root / "newest").read_text().strip()
    user_content = None
    if partial:
        folder = root / f"{tag}_partial"
        state = torch.load(folder / f"model_{_rank_info()}.pt", weights_only=False)
        session.model.load_state_dict(translate(state), strict=strict)
        if load_optimizer_states and session.optimizer is not None:
            session.optimizer.load_state_dict(torch.load(folder / f"optimizer_{_rank_info()}.pt", weights_only=False))
        if (folder / "user_content.pt").exists():
            user_content = torch.load(folder / "user_content.pt", weights_only=False)
    else:
        full = torch.load(root / tag, weights_only=False)
        session.model.load_state_dict(translate(full["model"]), strict=strict)
        if load_optimizer_states and session.optimizer is not None and full["optimizer"] is not None:
            session.optimizer.load_state_dict(full["optimizer"])
        if (root / f"user_content_{tag}").exists():
            user_content = torch.load(root / f"user_content_{tag}", weights_only=False)
    return user_content
