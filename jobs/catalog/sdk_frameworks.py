"""Regenerate ``frameworks.json`` from the installed SageMaker Python SDK, v2 or v3.

The SDK is the authority on which PyTorch training images exist and which versions its distributed
launchers accept, but importing it costs seconds. smjobs validates specs without importing it, so this
tool copies the facts into a dated data file once:

    python -m smjobs.catalog.sdk_frameworks        # rewrites jobs/catalog/frameworks.json

Both SDK majors install as the one distribution ``sagemaker``: v2 keeps its image maps in
``sagemaker.image_uris``, v3 in ``sagemaker.core.image_uris``. Each map knows only its own release's images
(v2's stops at 2.8.0), so the new file is merged with the one it replaces: the newer SDK's data is the base
(its ``source`` and ``retrieved``), and what only the other knows is added under ``also_from`` with that
one's source and date.

A test checks every training image in the data file against the installed SDK's map.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from smjobs.catalog import ANY_PYTHON, FRAMEWORKS_PATH, version_key

# The SDK's maps of PyTorch GPU training images: the Ubuntu `pytorch-training` images (to 2.10.0), and the
# Amazon Linux 2023 `pytorch` images from 2.11 (only v3's map has them; their tags name CUDA but no Python).
FAMILIES = ("pytorch", "pytorch-amzn2023")
# A GPU type, so that the SDK picks GPU images (and, for 1.6.0, the build it picks for p4d).
PROBE_INSTANCE_TYPE = "ml.p4d.24xlarge"

# AWS's SMDDP documentation ("Supported frameworks, AWS Regions, and instances types") lists these for
# SMDDP v2; the SDK's own list still admits ml.p3.16xlarge and ml.p3dn.24xlarge, which v2 dropped.
SMDDP_INSTANCE_TYPES = ["ml.p4d.24xlarge", "ml.p4de.24xlarge"]

# SageMaker model parallelism v2 (AWS docs, "SageMaker model parallelism library v2 release notes" and
# "Supported frameworks and AWS Regions"): the PyTorch versions its images were released for, and the
# instance types it supports.
SMP_V2_TORCH_VERSIONS = ["2.0.1", "2.1.2", "2.2.0", "2.3.1", "2.4.1", "2.5.1"]
SMP_V2_INSTANCE_TYPES = ["ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge"]
# SageMaker model parallelism v1 (in maintenance; last release v1.15.0 for PyTorch 2.0.0 and 1.13.1).
SMP_V1_TORCH_VERSIONS = ["1.12.1", "1.13.1", "2.0.0"]
SMP_V1_INSTANCE_TYPES = ["ml.p3.16xlarge", "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge"]
SMP_V2_DISTRIBUTION = {"torch_distributed": {"enabled": True},
                       "smdistributed": {"modelparallel": {"enabled": True}}}

# The torch_distributed launcher runs in the image (the training toolkit, sagemaker-pytorch-training), not in
# the SDK. The SDK's list of versions for it stopped at 2.8.0 when v2 went into maintenance, and v3 (whose
# ModelTrainer starts torchrun itself) carries it unchanged. The images after it still run the toolkit (AWS
# DLC release notes: the 2.9.0 and 2.10.0 pytorch-training images, and the Amazon Linux 2023 images, checked
# for 2.11 to 2.13; 2.14 is taken to be like its family), so every image newer than the list's last is added.
TOOLKIT_SOURCE = "torch_distributed for the images after the SDK's list from the AWS DLC release notes"


@dataclass(frozen=True)
class Sdk:
    """The installed SDK's modules that hold the image maps and the launcher lists."""

    version: str
    image_uris: Any
    fw_utils: Any
    utils: Any
    """Has ``_botocore_resolver``, which the SDK builds image hosts with."""
    config_dir: str
    """Where the image maps are, for the source line."""


def installed_sdk() -> Sdk:
    """The installed SDK, whichever major it is (from the distribution's metadata; the import is slow)."""
    version = metadata.version("sagemaker")
    if int(version.split(".")[0]) >= 3:
        from sagemaker.core import common_utils, fw_utils, image_uris

        return Sdk(version, image_uris, fw_utils, common_utils, "sagemaker/core/image_uri_config")
    from sagemaker import fw_utils, image_uris, utils

    return Sdk(version, image_uris, fw_utils, utils, "sagemaker/image_uri_config")


def cuda_version(entry: dict, tags: dict[str, str]) -> str | None:
    """The CUDA version the map gives a GPU image ("cu133" -> "13.3"): its container_version, else its tag."""
    for name in (entry.get("container_version", {}).get("gpu", ""), *tags.values()):
        found = re.search(r"(?<![a-z])cu(\d+)(\d)(?!\d)", name)
        if found:
            return f"{found.group(1)}.{found.group(2)}"
    return None


def _retrieve_tag(sdk: Sdk, family: str, entry: dict, version: str, py: str | None, scope: str,
                  instance_type: str) -> str:
    """The tag of the image ``image_uris.retrieve`` picks (in us-east-1, else the map's first region)."""
    region = "us-east-1" if "us-east-1" in entry["registries"] else next(iter(entry["registries"]))
    uri = sdk.image_uris.retrieve(family, region, version=version, py_version=py, instance_type=instance_type,
                                  image_scope=scope)
    return uri.rsplit(":", 1)[1]


def training_images(sdk: Sdk) -> tuple[dict[str, str], dict[str, dict]]:
    """(version aliases, full version -> entry with its registries in full) of every GPU training image in the
    SDK's PyTorch maps."""
    aliases: dict[str, str] = {}
    versions: dict[str, dict] = {}
    for family in FAMILIES:
        try:
            config = sdk.image_uris.config_for_framework(family)["training"]
        except FileNotFoundError:
            continue  # v2 has no Amazon Linux 2023 map
        # "latest" moves with every SDK release: a spec names the version it was tested with
        aliases.update({a: full for a, full in config["version_aliases"].items() if a != "latest"})
        for version, entry in config["versions"].items():
            if "py_versions" in entry:
                py_versions = [p for p in entry["py_versions"] if p.startswith("py3") and p != "py3"]
                if not py_versions:
                    continue  # py2-era images: nothing current runs there
            else:
                py_versions = []  # the tag names no Python: the SDK ignores py_version
            tags = {py or ANY_PYTHON: _retrieve_tag(sdk, family, entry, version, py, "training",
                                                    PROBE_INSTANCE_TYPE)
                    for py in py_versions or [None]}
            versions[version] = {"family": family, "py_versions": py_versions, "image_tags": tags,
                                 "cuda": cuda_version(entry, tags), "repository": entry["repository"],
                                 "registries": entry["registries"]}
    return aliases, versions


def smp_v2_images(sdk: Sdk) -> dict:
    """Per PyTorch version: the Python version and image tags the SDK picks for an SMP v2 job."""
    config = sdk.image_uris.config_for_framework("pytorch-smp")["training"]
    out = {}
    for version in SMP_V2_TORCH_VERSIONS:
        for py in ("py310", "py311", "py312"):
            tags = {}
            for label, instance in (("default", "ml.p4d.24xlarge"), ("p5", "ml.p5.48xlarge")):
                try:
                    uri = sdk.image_uris.get_training_image_uri(
                        "us-east-1", "pytorch", framework_version=version, py_version=py,
                        instance_type=instance, distribution=SMP_V2_DISTRIBUTION,
                    )
                except ValueError:
                    break
                tags[label] = uri.rsplit(":", 1)[1]
            if tags:
                smp_version = config["version_aliases"].get(version, version)
                out[version] = {
                    "py_versions": [py],
                    "image_tags": tags,
                    "repository": config["versions"][smp_version]["repository"],
                    "registries": config["versions"][smp_version]["registries"],
                }
                break
    return out


def inference_images(sdk: Sdk) -> dict:
    """Per PyTorch version: the GPU inference images (pytorch-inference) the SDK's PyTorchModel picks, for
    Batch Transform, with their registries in full."""
    config = sdk.image_uris.config_for_framework("pytorch")["inference"]
    out = {}
    for version, entry in config["versions"].items():
        py_versions = [p for p in entry["py_versions"] if p.startswith("py3") and p != "py3"]
        if not py_versions:
            continue
        out[version] = {
            "py_versions": py_versions,
            "image_tags": {py: _retrieve_tag(sdk, "pytorch", entry, version, py, "inference", "ml.g5.xlarge")
                           for py in py_versions},
            "repository": entry["repository"],
            "registries": entry["registries"],
        }
    return {"version_aliases": config["version_aliases"], "versions": out}


def frameworks_from_sdk(sdk: Sdk | None = None) -> dict:
    """The installed SDK's PyTorch training and inference images and distributed-launcher rules, registries in
    full (``pack`` shares them out into registry sets)."""
    sdk = sdk or installed_sdk()
    aliases, versions = training_images(sdk)
    inference = inference_images(sdk)
    entries = [*versions.values(), *inference["versions"].values()]
    regions = sorted({region for entry in entries for region in entry["registries"]})
    # The SDK builds the image host from botocore's ECR endpoint for the region: keep its DNS suffix.
    resolver = sdk.utils._botocore_resolver()
    domains = {}
    for region in regions:
        endpoint = resolver.construct_endpoint("ecr", region) or {"hostname": f"ecr.{region}.amazonaws.com"}
        domains[region] = endpoint["hostname"].split(f"{region}.", 1)[1]
    listed = [v for v in sdk.fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS if v in versions]
    after_list = [v for v in versions if version_key(v) > max(map(version_key, listed))]  # see TOOLKIT_SOURCE
    maps = ", ".join(f"{f}.json (training{', inference' if f == 'pytorch' else ''})" for f in FAMILIES
                     if any(e["family"] == f for e in versions.values()))
    sources = [f"sagemaker=={sdk.version}: {sdk.config_dir}/{maps}, "
               "fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS, "
               "fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS, pytorch-smp.json",
               *([TOOLKIT_SOURCE] if after_list else []),
               "SMDDP and SMP instance types and SMP versions from the AWS SMDDP and SMP documentation"]
    return {
        "description": "PyTorch training images and distributed-launcher support, copied from the SageMaker "
        "Python SDK.",
        "source": "; ".join(sources),
        "retrieved": _dt.date.today().isoformat(),
        "version_aliases": aliases,
        "versions": versions,
        "domains": domains,
        "torch_distributed_gpu_versions": listed + after_list,
        "smddp_versions": [v for v in sdk.fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS["pytorch"]
                           if v in versions],
        "smddp_instance_types": SMDDP_INSTANCE_TYPES,
        "smp_v2": {"versions": smp_v2_images(sdk), "instance_types": SMP_V2_INSTANCE_TYPES},
        "inference": inference,
        "smp_v1": {"versions": [v for v in SMP_V1_TORCH_VERSIONS if v in versions],
                   "instance_types": SMP_V1_INSTANCE_TYPES},
    }


# ----- the file: registry sets, and merging with the file it replaces ---------------------------------------
def pack(data: dict) -> dict:
    """Registries in full -> names of shared ``registry_sets`` (training first, then inference, in order)."""
    data = json.loads(json.dumps(data))
    seen: dict[str, dict] = {}
    for entry in [*data["versions"].values(), *data["inference"]["versions"].values()]:
        key = json.dumps(entry["registries"], sort_keys=True)
        seen.setdefault(key, entry["registries"])
        entry["registries"] = f"set{list(seen).index(key)}"
    data["registry_sets"] = {f"set{i}": registries for i, registries in enumerate(seen.values())}
    first = ["description", "source", "retrieved", "also_from", "version_aliases", "versions",
             "registry_sets"]
    return {k: data[k] for k in first if k in data} | {k: v for k, v in data.items() if k not in first}


def unpack(data: dict) -> dict:
    """A file's ``registry_sets`` names -> the registries in full."""
    data = json.loads(json.dumps(data))
    sets = data.pop("registry_sets")
    for entry in [*data["versions"].values(), *data["inference"]["versions"].values()]:
        entry["registries"] = sets[entry["registries"]]
    for entry in data["versions"].values():  # files from before these fields held v2's pytorch map only
        entry.setdefault("family", "pytorch")
        entry.setdefault("cuda", cuda_version({}, entry["image_tags"]))
    return data


def sdk_version_of(data: dict) -> tuple[int, ...]:
    """The SDK version a file was generated with (from its source: "sagemaker==3.27.0: ...")."""
    found = re.match(r"sagemaker==([\d.]+)", data["source"])
    return version_key(found.group(1)) if found else ()


def merge(fresh: dict, previous: dict | None) -> dict:
    """One catalog from the installed SDK's (``fresh``) and the one it replaces (``previous``, unpacked): the
    newer SDK's is the base, whole where both know a training image and for the inference and SMP v2 tables;
    the training images only the other knows are added, recorded under ``also_from`` with their source and
    date."""
    if previous is None:
        return fresh
    newer = sdk_version_of(fresh) >= sdk_version_of(previous)
    base, other = (fresh, previous) if newer else (previous, fresh)
    added = [v for v in other["versions"] if v not in base["versions"]]
    merged = {**base, "versions": {**base["versions"], **{v: other["versions"][v] for v in added}}}
    records = list(base.get("also_from", []))
    # an added image keeps the record it came with, if the other file had added it itself
    for record in other.get("also_from", []):
        if carried := [v for v in record["versions"] if v in added]:
            records.append({**record, "versions": carried})
    recorded = {v for record in records for v in record["versions"]}
    if own := [v for v in added if v not in recorded]:
        records.append({"source": other["source"], "retrieved": other["retrieved"], "versions": own})
    if records:
        merged["also_from"] = records
    merged["versions"] = dict(sorted(merged["versions"].items(), key=lambda item: version_key(item[0])))
    merged["version_aliases"] = {**other["version_aliases"], **base["version_aliases"]}
    merged["domains"] = dict(sorted({**other["domains"], **base["domains"]}.items()))
    for path in (("torch_distributed_gpu_versions",), ("smddp_versions",), ("smp_v1", "versions")):
        lists = [data[path[0]] if len(path) == 1 else data[path[0]][path[1]] for data in (base, other)]
        union = sorted({v for listed in lists for v in listed if v in merged["versions"]}, key=version_key)
        if len(path) == 1:
            merged[path[0]] = union
        else:
            merged[path[0]] = {**base[path[0]], path[1]: union}
    return merged


def main() -> None:
    path = Path(FRAMEWORKS_PATH)
    previous = unpack(json.loads(path.read_text())) if path.exists() else None
    data = pack(merge(frameworks_from_sdk(), previous))
    path.write_text(json.dumps(data, indent=1) + "\n")
    kept = sum(len(record["versions"]) for record in data.get("also_from", []))
    print(f"wrote {path}: {len(data['versions'])} PyTorch versions, {kept} of them from another SDK's file "
          f"({data['source']})")


if __name__ == "__main__":
    main()
