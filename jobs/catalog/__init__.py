"""Catalogs as data: GPU training instance types, GPU models, on-demand prices and PyTorch framework images.

Each JSON file beside this module records where its facts come from and when they were retrieved.
Code reads them through the frozen views below; nothing here imports the SageMaker SDK or touches AWS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

_HERE = Path(__file__).parent
INSTANCES_PATH = _HERE / "instances.json"
FRAMEWORKS_PATH = _HERE / "frameworks.json"
PRICES_PATH = _HERE / "prices.json"
TUNING_LIMITS_PATH = _HERE / "tuning_limits.json"


@dataclass(frozen=True)
class InstanceType:
    """One GPU training instance type."""

    name: str
    family: str
    gpu_count: int
    gpu_model: str
    gpu_architecture: str
    gpu_memory_gb: float
    """Device memory of one GPU."""
    vcpus: int
    memory_gib: float
    """Host memory."""
    nvlink: bool
    """GPUs within the instance are connected by NVLink/NVSwitch."""
    efa: bool
    """The instance supports Elastic Fabric Adapter."""
    network_gbps: float
    gpu_memory_gib: float = 0.0
    """Device memory of one GPU as the driver reports it (nvidia-smi's total, in GiB): what planning uses. The
    nominal ``gpu_memory_gb`` is larger (an L40S "48 GB" reports 45.0 GiB)."""


@dataclass(frozen=True)
class GpuModel:
    name: str
    peak_tflops: float
    """Dense bf16 (fp16 on Turing/Volta) tensor-core throughput."""
    peak_tf32_tflops: float
    """Dense TF32 tensor-core throughput (the fp32 figure where the GPU has no TF32)."""
    peak_fp32_tflops: float
    """Non-tensor fp32 throughput: what fp32 matmuls get under PyTorch's default (TF32 off)."""
    intra_node_gbytes_per_s: float
    """Per GPU and direction, between the GPUs of one instance (NVLink or PCIe)."""
    interconnect: str

    def peak_for(self, precision: str) -> float:
        """Peak TFLOPS of the arithmetic ``precision`` runs on: bf16/fp16 ("mixed", "bf16"), "tf32" or "fp32"."""
        return {"fp32": self.peak_fp32_tflops, "tf32": self.peak_tf32_tflops}.get(precision, self.peak_tflops)


@dataclass(frozen=True)
class InstanceCatalog:
    source: str
    retrieved: str
    types: dict[str, InstanceType]
    excluded: dict[str, str]
    """Instance types botocore lists that the catalog leaves out, with the reason."""
    gpu_models: dict[str, GpuModel]
    gpu_source: str
    device_memory_source: str = ""

    def get(self, name: str) -> InstanceType | None:
        return self.types.get(name)

    def gpu(self, name: str) -> GpuModel:
        return self.gpu_models[self.types[name].gpu_model]


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str
    retrieved: str | None
    """ISO date the price was read, None when its source is undated."""


@dataclass(frozen=True)
class Offered:
    """The training instance types a region offers: every type with an on-demand training SKU there."""

    instance_types: frozenset[str]
    source: str
    retrieved: str


@dataclass(frozen=True)
class PriceCatalog:
    default_region: str
    regions: dict[str, dict[str, Price]]
    offered: dict[str, Offered] = field(default_factory=dict)
    """Per region, when it was read (``smjobs prices refresh``); a region without it is not checked."""

    def price(self, instance_type: str, region: str | None = None) -> Price | None:
        return self.regions.get(region or self.default_region, {}).get(instance_type)

    def not_offered(self, instance_type: str, region: str | None) -> Offered | None:
        """The region's list, when it is known and ``instance_type`` is not on it; else None."""
        listed = self.offered.get(region or self.default_region)
        return listed if listed is not None and instance_type not in listed.instance_types else None


def supported_libraries(instance_type: str) -> tuple[str, ...]:
    """The SageMaker distributed libraries that run on ``instance_type`` (torch.distributed runs on all)."""
    fw = frameworks()
    named = (("smddp", fw.smddp_instance_types), ("smp_v2", fw.smp_v2_instance_types), ("smp_v1", fw.smp_v1_instance_types))
    return ("torch_distributed", *(name for name, types in named if instance_type in types))


def version_key(version: str) -> tuple[int, ...]:
    """A version's numbers, for sorting versions ("2.10.0" after "2.9.1")."""
    return tuple(int(x) for x in re.findall(r"\d+", version))


@dataclass(frozen=True)
class SmpV2Image:
    py_versions: tuple[str, ...]
    image_tags: dict[str, str]
    """"default" and "p5" (the SDK picks another CUDA build for p5) -> image tag."""
    repository: str
    registries: dict[str, str]


@dataclass(frozen=True)
class InferenceImage:
    """A PyTorch GPU inference image (pytorch-inference), which Batch Transform's model server runs in."""

    py_versions: tuple[str, ...]
    image_tags: dict[str, str]
    repository: str
    registries: dict[str, str]


ANY_PYTHON = "any"
"""The ``image_tags`` key of an image whose tag names no Python version (the SDK ignores ``py_version``)."""


@dataclass(frozen=True)
class FrameworkCatalog:
    source: str
    retrieved: str
    version_aliases: dict[str, str]
    py_versions: dict[str, tuple[str, ...]]
    """Full PyTorch version -> Python versions with a GPU training image; empty when the SDK's map names none
    (the Amazon Linux 2023 images: one Python each, not in the tag, and ``py_version`` does not pick them)."""
    image_tags: dict[str, dict[str, str]]
    """Full PyTorch version -> Python version (or ``ANY_PYTHON``) -> GPU image tag."""
    families: dict[str, str]
    """Full PyTorch version -> the SDK's name for its image map: ``pytorch`` (the Ubuntu ``pytorch-training``
    images) or ``pytorch-amzn2023`` (the Amazon Linux 2023 ``pytorch`` images, from 2.11)."""
    cuda_versions: dict[str, str | None]
    """Full PyTorch version -> CUDA version of its GPU image ("13.3"); None where the SDK's map does not say."""
    repositories: dict[str, str]
    registries: dict[str, dict[str, str]]
    """Full PyTorch version -> region -> ECR account."""
    domains: dict[str, str]
    torch_distributed_gpu_versions: tuple[str, ...]
    smddp_versions: tuple[str, ...]
    smddp_instance_types: tuple[str, ...]
    smp_v2_images: dict[str, SmpV2Image]
    """PyTorch version -> the SageMaker model parallelism v2 image for it."""
    smp_v2_instance_types: tuple[str, ...]
    smp_v1_versions: tuple[str, ...]
    smp_v1_instance_types: tuple[str, ...]
    inference_images: dict[str, InferenceImage]
    """Full PyTorch version -> its GPU inference image."""
    inference_aliases: dict[str, str]

    def resolve_inference(self, version: str) -> str | None:
        """Full version of the inference image for ``version`` or its alias; None when there is none."""
        full = version if version in self.inference_images else self.inference_aliases.get(version)
        return full if full in self.inference_images else None

    def inference_image_uri(self, version: str, py_version: str, region: str) -> str | None:
        """The GPU inference image URI the SDK's PyTorchModel would pick, or None when there is none."""
        full = self.resolve_inference(version)
        image = self.inference_images.get(full) if full else None
        if image is None or py_version not in image.py_versions or region not in image.registries:
            return None
        domain = self.domains.get(region, "amazonaws.com")
        return f"{image.registries[region]}.dkr.ecr.{region}.{domain}/{image.repository}:{image.image_tags[py_version]}"

    def smp_v2_image_uri(self, version: str, region: str, instance_type: str) -> str | None:
        image = self.smp_v2_images.get(version)
        if image is None or region not in image.registries:
            return None
        tag = image.image_tags["p5" if "p5" in instance_type else "default"]
        domain = self.domains.get(region, "amazonaws.com")
        return f"{image.registries[region]}.dkr.ecr.{region}.{domain}/{image.repository}:{tag}"

    def image_accounts(self, region: str) -> tuple[str, ...]:
        """The ECR accounts every image smjobs may pull in ``region`` comes from (training, inference, SMP v2):
        what the execution role's image permissions are scoped to."""
        tables = [*self.registries.values(), *(i.registries for i in self.inference_images.values()),
                  *(i.registries for i in self.smp_v2_images.values())]
        return tuple(sorted({table[region] for table in tables if region in table}))

    def image_regions(self) -> tuple[str, ...]:
        """Regions with at least one image."""
        tables = [*self.registries.values(), *(i.registries for i in self.inference_images.values()),
                  *(i.registries for i in self.smp_v2_images.values())]
        return tuple(sorted({region for table in tables for region in table}))

    def libraries(self, version: str) -> tuple[str, ...]:
        """SageMaker's launcher and distributed libraries that have a training image for PyTorch ``version``:
        torch_distributed, smddp, smp_v2 (its own images: 2.4.1 has one, and no pytorch-training image), smp_v1."""
        full = self.resolve(version) or version
        named = (("torch_distributed", full in self.torch_distributed_gpu_versions),
                 ("smddp", full in self.smddp_versions), ("smp_v2", full in self.smp_v2_images),
                 ("smp_v1", full in self.smp_v1_versions))
        return tuple(name for name, has in named if has)

    def resolve(self, version: str) -> str | None:
        """Full version for ``version`` or its alias ("2.3" -> "2.3.0"); None when no image exists."""
        if version in self.py_versions:
            return version
        return self.version_aliases.get(version) if self.version_aliases.get(version) in self.py_versions else None

    def image_uri(self, version: str, py_version: str, region: str) -> str | None:
        """The GPU training image URI the SDK would pick (``image_uris.retrieve`` of the version's family), or
        None when there is none in that region."""
        full = self.resolve(version)
        if full is None:
            return None
        if self.py_versions[full]:
            if py_version not in self.py_versions[full]:
                return None
            tag = self.image_tags[full][py_version]
        else:  # one image whatever py_version says, as the SDK picks it
            tag = self.image_tags[full][ANY_PYTHON]
        account = self.registries[full].get(region)
        if account is None:
            return None
        domain = self.domains.get(region, "amazonaws.com")
        return f"{account}.dkr.ecr.{region}.{domain}/{self.repositories[full]}:{tag}"


@cache
def instances() -> InstanceCatalog:
    data = json.loads(INSTANCES_PATH.read_text())
    reported = data["device_memory"]["reported_mib"]
    types = {name: InstanceType(name=name, **fields, gpu_memory_gib=reported[f"{fields['gpu_model']} {fields['gpu_memory_gb']:g}"] / 1024)
             for name, fields in data["instance_types"].items()}
    gpus = {name: GpuModel(name=name, **fields) for name, fields in data["gpu_models"]["models"].items()}
    memory = data["device_memory"]
    return InstanceCatalog(data["source"], data["retrieved"], types, dict(data["excluded"]), gpus, data["gpu_models"]["source"],
                           f"{memory['source']} (retrieved {memory['retrieved']})")


def load_prices(path: Path = PRICES_PATH) -> PriceCatalog:
    data = json.loads(path.read_text())
    regions = {region: {name: Price(**fields) for name, fields in table.items()} for region, table in data["regions"].items()}
    offered = {region: Offered(frozenset(entry["instance_types"]), entry["source"], entry["retrieved"])
               for region, entry in data.get("offered", {}).items()}
    return PriceCatalog(data["default_region"], regions, offered)


@cache
def prices() -> PriceCatalog:
    return load_prices()


@cache
def frameworks() -> FrameworkCatalog:
    data = json.loads(FRAMEWORKS_PATH.read_text())
    versions = data["versions"]
    return FrameworkCatalog(
        source=data["source"],
        retrieved=data["retrieved"],
        version_aliases=dict(data["version_aliases"]),
        py_versions={v: tuple(e["py_versions"]) for v, e in versions.items()},
        image_tags={v: dict(e["image_tags"]) for v, e in versions.items()},
        families={v: e["family"] for v, e in versions.items()},
        cuda_versions={v: e["cuda"] for v, e in versions.items()},
        repositories={v: e["repository"] for v, e in versions.items()},
        registries={v: data["registry_sets"][e["registries"]] for v, e in versions.items()},
        domains=dict(data["domains"]),
        torch_distributed_gpu_versions=tuple(data["torch_distributed_gpu_versions"]),
        smddp_versions=tuple(data["smddp_versions"]),
        smddp_instance_types=tuple(data["smddp_instance_types"]),
        smp_v2_images={
            v: SmpV2Image(tuple(e["py_versions"]), dict(e["image_tags"]), e["repository"], dict(e["registries"]))
            for v, e in data["smp_v2"]["versions"].items()
        },
        smp_v2_instance_types=tuple(data["smp_v2"]["instance_types"]),
        smp_v1_versions=tuple(data["smp_v1"]["versions"]),
        smp_v1_instance_types=tuple(data["smp_v1"]["instance_types"]),
        inference_images={
            v: InferenceImage(tuple(e["py_versions"]), dict(e["image_tags"]), e["repository"],
                              data["registry_sets"][e["registries"]])
            for v, e in data["inference"]["versions"].items()
        },
        inference_aliases=dict(data["inference"]["version_aliases"]),
    )


@cache
def tuning_limits() -> dict:
    """SageMaker's automatic model tuning limits (``tuning_limits.json``: values with their source and date)."""
    return json.loads(TUNING_LIMITS_PATH.read_text())
