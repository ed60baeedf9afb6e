"""Regenerate ``frameworks.json`` from the installed SageMaker Python SDK.

The SDK is the authority on which PyTorch training images exist and which versions its distributed
launchers accept, but importing it costs seconds. smjobs validates specs without importing it, so this
tool copies the facts into a dated data file once:

    python -m smjobs.catalog.sdk_frameworks        # rewrites jobs/catalog/frameworks.json

A test checks that every version in the data file still has an image in the installed SDK.
"""

from __future__ import annotations

import datetime as _dt
import json
from importlib import metadata
from pathlib import Path

from smjobs.catalog import FRAMEWORKS_PATH

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
SMP_V2_DISTRIBUTION = {"torch_distributed": {"enabled": True}, "smdistributed": {"modelparallel": {"enabled": True}}}


def smp_v2_images(image_uris) -> dict:
    """Per PyTorch version: the Python version and image tags the SDK picks for an SMP v2 job."""
    config = image_uris.config_for_framework("pytorch-smp")["training"]
    out = {}
    for version in SMP_V2_TORCH_VERSIONS:
        for py in ("py310", "py311", "py312"):
            tags = {}
            for label, instance in (("default", "ml.p4d.24xlarge"), ("p5", "ml.p5.48xlarge")):
                try:
                    uri = image_uris.get_training_image_uri(
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


def inference_images(image_uris, registry_set) -> dict:
    """Per PyTorch version: the GPU inference images (pytorch-inference) the SDK's PyTorchModel picks, for Batch
    Transform. ``registry_set(registries)`` names a registry set shared with the training table."""
    config = image_uris.config_for_framework("pytorch")["inference"]
    out = {}
    for version, entry in config["versions"].items():
        py_versions = [p for p in entry["py_versions"] if p.startswith("py3") and p != "py3"]
        if not py_versions:
            continue
        region = "us-east-1" if "us-east-1" in entry["registries"] else next(iter(entry["registries"]))
        out[version] = {
            "py_versions": py_versions,
            "image_tags": {
                py: image_uris.retrieve("pytorch", region, version=version, py_version=py, instance_type="ml.g5.xlarge",
                                        image_scope="inference").rsplit(":", 1)[1]
                for py in py_versions
            },
            "repository": entry["repository"],
            "registries": registry_set(entry["registries"]),
        }
    return {"version_aliases": config["version_aliases"], "versions": out}


def frameworks_from_sdk() -> dict:
    """Read the PyTorch training and inference image tables and the distributed-launcher rules from the installed
    SDK."""
    from sagemaker import fw_utils, image_uris, utils  # slow import, only here

    config = image_uris.config_for_framework("pytorch")["training"]
    versions = {}
    registries_seen: dict[str, dict] = {}
    for version, entry in config["versions"].items():
        py_versions = [p for p in entry["py_versions"] if p.startswith("py3") and p != "py3"]
        if not py_versions:
            continue  # py2-era images: nothing current runs there
        key = json.dumps(entry["registries"], sort_keys=True)
        registries_seen.setdefault(key, entry["registries"])
        region = "us-east-1" if "us-east-1" in entry["registries"] else next(iter(entry["registries"]))
        tags = {
            py: image_uris.retrieve(
                "pytorch", region, version=version, py_version=py, instance_type="ml.p4d.24xlarge", image_scope="training"
            ).rsplit(":", 1)[1]
            for py in py_versions
        }
        versions[version] = {
            "py_versions": py_versions,
            "image_tags": tags,
            "repository": entry["repository"],
            "registries": f"set{list(registries_seen).index(key)}",
        }

    def registry_set(registries: dict) -> str:
        key = json.dumps(registries, sort_keys=True)
        registries_seen.setdefault(key, registries)
        return f"set{list(registries_seen).index(key)}"

    inference = inference_images(image_uris, registry_set)
    registry_sets = {f"set{i}": regs for i, regs in enumerate(registries_seen.values())}
    regions = sorted({r for regs in registry_sets.values() for r in regs})
    # The SDK builds the image host from botocore's ECR endpoint for the region: keep its DNS suffix.
    resolver = utils._botocore_resolver()
    domains = {}
    for region in regions:
        endpoint = resolver.construct_endpoint("ecr", region) or {"hostname": f"ecr.{region}.amazonaws.com"}
        domains[region] = endpoint["hostname"].split(f"{region}.", 1)[1]
    smddp = [
        v for v in fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS["pytorch"] if v in versions
    ]
    return {
        "description": "PyTorch training images and distributed-launcher support, copied from the SageMaker Python SDK.",
        "source": f"sagemaker=={metadata.version('sagemaker')}: image_uri_config/pytorch.json (training, inference), "
        "fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS, "
        "fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS, image_uri_config/pytorch-smp.json; "
        "SMDDP and SMP instance types and SMP versions from the AWS SMDDP and SMP documentation",
        "retrieved": _dt.date.today().isoformat(),
        "version_aliases": config["version_aliases"],
        "versions": versions,
        "registry_sets": registry_sets,
        "domains": domains,
        "torch_distributed_gpu_versions": [
            v for v in fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS if v in versions
        ],
        "smddp_versions": smddp,
        "smddp_instance_types": SMDDP_INSTANCE_TYPES,
        "smp_v2": {"versions": smp_v2_images(image_uris), "instance_types": SMP_V2_INSTANCE_TYPES},
        "inference": inference,
        "smp_v1": {"versions": [v for v in SMP_V1_TORCH_VERSIONS if v in versions], "instance_types": SMP_V1_INSTANCE_TYPES},
    }


def main() -> None:
    data = frameworks_from_sdk()
    Path(FRAMEWORKS_PATH).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {FRAMEWORKS_PATH}: {len(data['versions'])} PyTorch versions ({data['source']})")


if __name__ == "__main__":
    main()
