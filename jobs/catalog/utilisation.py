"""What a GPU reaches of its peak, as data: the default model-FLOPs utilisation per GPU model and the share of
link bandwidth NCCL's collectives reach (``utilisation.json`` beside this module, with its sources).

The planner's step time divides the FLOPs a step executes by the peak of the precision used times this
utilisation (``smjobs.planner.cost``); a spec's ``plan.mfu`` replaces the default with a measured figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

UTILISATION_PATH = Path(__file__).parent / "utilisation.json"


@dataclass(frozen=True)
class MfuDefault:
    mfu: float
    """Model FLOPs utilisation of a run without activation recomputation (PaLM's FLOP count)."""
    basis: str
    """Where the figure comes from, said with it in plans."""
    runs: tuple[str, ...] = ()
    """Ids of the published runs (tests/data/published_runs.yaml) it is fitted to."""
    half_width: float = 0.0
    """Matmul width per GPU (hidden size over the tensor-parallel degree) at which a model reaches half of
    ``mfu``: narrow matmuls use the GPU less (0: no such effect)."""

    def at_width(self, width: float | None) -> float:
        """The utilisation of a model whose matmuls are ``width`` wide on each GPU (None: unknown, ``mfu``)."""
        if not width or not self.half_width:
            return self.mfu
        return self.mfu * width / (width + self.half_width)


@dataclass(frozen=True)
class UtilisationCatalog:
    source: str
    retrieved: str
    by_gpu: dict[str, MfuDefault]
    fallback: MfuDefault
    """For a GPU model without published runs."""
    nvlink_efficiency: float
    """Bus bandwidth a ring collective reaches over NVLink/NVSwitch, as a share of the link's rate."""
    pcie_efficiency: float
    network_efficiency: float
    """The same over the instance network (EFA, or TCP without it)."""
    collectives_source: str

    def mfu(self, gpu_model: str) -> MfuDefault:
        return self.by_gpu.get(gpu_model, self.fallback)

    def link_efficiency(self, interconnect: str) -> float:
        return self.nvlink_efficiency if interconnect.startswith("NVLink") else self.pcie_efficiency


def _default(data: dict) -> MfuDefault:
    return MfuDefault(float(data["mfu"]), data["basis"], tuple(data.get("runs", ())), float(data.get("half_width", 0)))


@cache
def utilisation(path: Path = UTILISATION_PATH) -> UtilisationCatalog:
    data = json.loads(Path(path).read_text())
    links = data["collectives"]
    return UtilisationCatalog(
        source=data["source"], retrieved=data["retrieved"],
        by_gpu={name: _default(entry) for name, entry in data["mfu"].items()},
        fallback=_default(data["mfu_fallback"]),
        nvlink_efficiency=float(links["nvlink"]), pcie_efficiency=float(links["pcie"]),
        network_efficiency=float(links["network"]), collectives_source=links["source"])
