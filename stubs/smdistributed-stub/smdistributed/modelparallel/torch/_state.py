"""The one SMP v1 session of a process: configuration, topology, process groups, the wrapped model and optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smdistributed.modelparallel.torch._topology import Config, Topology


@dataclass
class Session:
    config: Config
    topology: Topology
    groups: dict[str, Any]
    """Group name (WORLD, MP_GROUP, DP_GROUP, PP_GROUP, TP_GROUP, RDP_GROUP) -> this rank's torch ProcessGroup."""
    members: dict[str, list[int]]
    """Group name -> the global ranks of this rank's group."""
    local_rank: int
    local_size: int
    model: Any = None
    optimizer: Any = None
    in_step: bool = False
    steps: int = 0
    extra: dict = field(default_factory=dict)

    def index_in(self, group: str) -> int:
        """This rank's position in its ``group`` (mp_rank for MP_GROUP, dp_rank for DP_GROUP)."""
        return self.members[group].index(self.topology.rank)


def not_emulated(api: str):
    """What every API the stub does not emulate does: say so, by name."""
    raise NotImplementedError(f"{api} is not emulated by smdistributed-stub (see its README for what is)")


_session: Session | None = None


def current(api: str) -> Session:
    if _session is None:
        raise RuntimeError(f"{api} needs smp.init() first")
    return _session


def set_session(session: Session | None) -> None:
    global _session
    _session = session


def initialized() -> bool:
    return _session is not None
