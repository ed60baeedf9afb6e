"""The catalogs agree with botocore's instance list and the installed SDK's image table: SDK v2's
(``sagemaker.image_uris``) in a venv with v2, v3's (``sagemaker.core.image_uris``) in a venv with v3."""

from __future__ import annotations

import functools
import importlib
from importlib import metadata

import botocore.session
import pytest

from smjobs import catalog
from smjobs.catalog import sdk_frameworks
from smjobs.spec.job import JobSpec

GPU_FAMILY_PREFIXES = ("ml.g", "ml.p")
SDK_MAJOR = int(metadata.version("sagemaker").split(".")[0])  # a major these tables do not know fails loudly
# Where each major keeps its image maps, launcher lists and the resolver its image hosts come from.
SDK_PACKAGE = {2: "sagemaker", 3: "sagemaker.core"}[SDK_MAJOR]
SDK_UTILS = {2: "sagemaker.utils", 3: "sagemaker.core.common_utils"}[SDK_MAJOR]
# What the installed map does not know, by design: v2's map stops at 2.8.0 (and v3's added me-west-1 to
# 2.8.0); v3's map has every image the catalog lists.
NOT_IN_MAP = {
    2: {"versions": {"2.9.0", "2.10.0", "2.11", "2.12", "2.13", "2.14"}, "regions": {("2.8.0", "me-west-1")}},
    3: {"versions": set(), "regions": set()},
}[SDK_MAJOR]
# A region of each partition and of a regional (non-DLC-default) account, for the URIs retrieve builds.
URI_REGIONS = ("us-east-1", "eu-west-1", "af-south-1", "cn-north-1", "us-gov-west-1", "eusc-de-east-1")
AL2023 = ("2.11", "2.12", "2.13", "2.14")


def sdk(module: str):
    """A module of the installed SDK (``image_uris``, ``fw_utils``), wherever its major keeps it."""
    return importlib.import_module(f"{SDK_PACKAGE}.{module}")


@pytest.fixture
def image_uris(monkeypatch):
    """The installed SDK's image_uris, its botocore resolver built once instead of per call (the same pure
    read of botocore's endpoints file, which is nine tenths of each retrieve's time)."""
    utils = importlib.import_module(SDK_UTILS)
    monkeypatch.setattr(utils, "_botocore_resolver", functools.cache(utils._botocore_resolver))
    return sdk("image_uris")


def sdk_training_map(family: str) -> dict | None:
    """The installed SDK's training map of an image family, or None without one (v2: pytorch-amzn2023)."""
    try:
        return sdk("image_uris").config_for_framework(family)["training"]
    except FileNotFoundError:
        return None


def botocore_gpu_training_types() -> list[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return [t for t in model.shape_for("TrainingInstanceType").enum if t.startswith(GPU_FAMILY_PREFIXES)]


def test_every_botocore_gpu_type_is_in_the_catalog_or_excluded_with_a_reason():
    instances = catalog.instances()
    missing = [t for t in botocore_gpu_training_types() if t not in instances.types and t not in instances.excluded]
    assert not missing, f"add these to jobs/catalog/instances.json: {missing}"
    assert all(len(reason) > 20 for reason in instances.excluded.values())


def test_catalog_holds_only_types_the_service_accepts():
    accepted = set(botocore_gpu_training_types())
    assert set(catalog.instances().types) <= accepted


def test_catalog_agrees_with_the_sdk_gpu_table():
    import json
    from importlib import resources

    gpu_info = resources.files(SDK_PACKAGE).joinpath("image_uri_config/instance_gpu_info.json")
    table = json.loads(gpu_info.read_text())
    for name, info in table["us-east-1"].items():
        instance = catalog.instances().get(name)
        if instance is None:
            assert name in catalog.instances().excluded or not name.startswith(GPU_FAMILY_PREFIXES) or name == "ml.g5n.xlarge"
            continue
        assert instance.gpu_count == info["Count"], name
        # The SDK's table mixes nominal GB and usable MiB (g5.48xlarge: 22.35 GiB per GPU, g5.12xlarge: 24):
        # agree within 10%.
        listed = instance.gpu_memory_gb * instance.gpu_count * 1024
        assert abs(listed - info["TotalGpuMemoryInMiB"]) / info["TotalGpuMemoryInMiB"] < 0.10, name


def test_catalogs_record_source_and_date():
    for cat in (catalog.instances(), catalog.frameworks()):
        assert cat.source and cat.retrieved[:4].isdigit()
    assert catalog.instances().gpu_source


def test_every_instance_has_gpu_performance_data_and_library_support():
    instances = catalog.instances()
    for name in instances.types:
        gpu = instances.gpu(name)
        assert gpu.peak_tflops > 0 and gpu.intra_node_gbytes_per_s > 0, name
        assert "torch_distributed" in catalog.supported_libraries(name)
    # NVLink generations are faster than PCIe, and each GPU generation is faster than the one before
    assert instances.gpu("ml.p4d.24xlarge").intra_node_gbytes_per_s > instances.gpu("ml.g5.48xlarge").intra_node_gbytes_per_s
    assert instances.gpu("ml.p3.16xlarge").peak_tflops < instances.gpu("ml.p4d.24xlarge").peak_tflops < instances.gpu("ml.p5.48xlarge").peak_tflops
    assert catalog.supported_libraries("ml.p4d.24xlarge") == ("torch_distributed", "smddp", "smp_v2", "smp_v1")
    assert catalog.supported_libraries("ml.g5.48xlarge") == ("torch_distributed",)


def test_every_training_image_is_the_one_the_installed_sdk_picks(image_uris):
    """Each (version, Python) image's URI equals retrieve's in a region of each partition, and its account in
    every region is the map's. What the installed map does not know is filtered out, and counted."""
    fw = catalog.frameworks()
    maps = {family: sdk_training_map(family) for family in set(fw.families.values())}
    known = {v for v, family in fw.families.items() if maps[family] and v in maps[family]["versions"]}
    assert set(fw.py_versions) - known == NOT_IN_MAP["versions"]
    unknown_regions, uris = set(), 0
    for version in sorted(known, key=catalog.version_key):
        family, theirs = fw.families[version], maps[fw.families[version]]["versions"][version]["registries"]
        unknown_regions |= {(version, region) for region in fw.registries[version] if region not in theirs}
        assert {r: a for r, a in fw.registries[version].items() if r in theirs} == theirs, version
        for py in fw.py_versions[version] or [None]:
            for region in (r for r in URI_REGIONS if r in theirs):
                ours = fw.image_uri(version, py or "py312", region)
                assert ours == image_uris.retrieve(family, region, version=version, py_version=py,
                                                   instance_type="ml.p4d.24xlarge", image_scope="training")
                uris += 1
    assert unknown_regions == NOT_IN_MAP["regions"]
    assert uris > {2: 60, 3: 80}[SDK_MAJOR]


def test_the_newest_images_their_python_cuda_and_libraries():
    fw = catalog.frameworks()
    newest = {v: (fw.families[v], fw.py_versions[v], fw.cuda_versions[v], fw.repositories[v]) for v in
              ("2.8.0", "2.9.0", "2.10.0", *AL2023)}
    assert newest == {  # the pytorch-training tags name no CUDA: the map does not say
        "2.8.0": ("pytorch", ("py312",), None, "pytorch-training"),
        "2.9.0": ("pytorch", ("py312",), None, "pytorch-training"),
        "2.10.0": ("pytorch", ("py313",), None, "pytorch-training"),
        "2.11": ("pytorch-amzn2023", (), "13.0", "pytorch"),
        "2.12": ("pytorch-amzn2023", (), "13.0", "pytorch"),
        "2.13": ("pytorch-amzn2023", (), "13.3", "pytorch"),
        "2.14": ("pytorch-amzn2023", (), "13.3", "pytorch"),
    }
    # an Amazon Linux 2023 image is picked whatever py_version says, as the SDK ignores it
    assert fw.image_uri("2.13", "py312", "us-east-1") == fw.image_uri("2.13", "py311", "us-east-1") == \
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker"
    assert fw.image_uri("2.10.0", "py312", "us-east-1") is None
    for version in ("2.9.0", "2.10.0", *AL2023):  # no SMDDP and no SMP in any of them
        assert fw.libraries(version) == ("torch_distributed",), version
    assert fw.libraries("2.2.0") == ("torch_distributed", "smddp", "smp_v2")
    assert fw.libraries("2.0.0") == ("torch_distributed", "smddp", "smp_v1")
    assert fw.libraries("2.4.1") == ("smp_v2",)  # its own image; SageMaker has no pytorch-training 2.4.1


def test_the_default_version_is_the_newest_tested_one_and_has_an_image():
    fw = catalog.frameworks()
    default = JobSpec.model_fields["framework_version"].default
    assert default == "2.13" and fw.resolve(default) == default and fw.families[default] == "pytorch-amzn2023"
    assert catalog.version_key(default) < catalog.version_key(max(fw.py_versions, key=catalog.version_key))
    assert fw.image_uri(default, JobSpec.model_fields["py_version"].default, "eu-west-1") is not None


def test_inference_images_match_the_installed_sdk(image_uris):
    fw = catalog.frameworks()
    assert fw.resolve_inference("2.6") == "2.6.0" and fw.resolve_inference("2.8.0") is None
    checked = 0
    for version, image in fw.inference_images.items():
        for py in image.py_versions:
            for region in ("us-east-1", "eu-west-1", "cn-north-1"):
                ours = fw.inference_image_uri(version, py, region)
                if ours is None:
                    continue
                assert ours == image_uris.retrieve("pytorch", region, version=version, py_version=py,
                                                   instance_type="ml.g5.2xlarge", image_scope="inference")
                checked += 1
    assert checked > 30


@pytest.mark.parametrize("alias,full", [
    ("2.7", "2.7.1"), ("2.5", "2.5.1"), ("2.8.0", "2.8.0"), ("2.9", "2.9.0"), ("2.10", "2.10.0"),
    ("2.13", "2.13"), ("2.13.0", None), ("latest", None), ("2.15", None),
])
def test_version_aliases(alias, full):
    assert catalog.frameworks().resolve(alias) == full


def test_launcher_support_lists_match_the_sdk():
    fw_utils = sdk("fw_utils")
    fw = catalog.frameworks()
    listed = fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS
    # the SDK's list stops at 2.8.0; the images after it run the toolkit's launcher (sdk_frameworks' comment)
    after = [v for v in fw.torch_distributed_gpu_versions if v not in listed]
    assert after == ["2.9.0", "2.10.0", *AL2023]
    assert min(map(catalog.version_key, after)) > max(map(catalog.version_key, listed))
    assert set(fw.smddp_versions) <= set(fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS["pytorch"])
    # 2.4.1 is in the SDK's torch_distributed list but has no image: the catalog leaves it out.
    assert "2.4.1" not in fw.torch_distributed_gpu_versions


def _catalog(sdk_version: str, versions: dict, retrieved: str = "2026-01-01") -> dict:
    """A small unpacked catalog, as ``sdk_frameworks.frameworks_from_sdk`` makes them."""
    entry = {"family": "pytorch", "py_versions": ["py312"], "cuda": None, "repository": "pytorch-training"}
    return {"source": f"sagemaker=={sdk_version}: maps", "retrieved": retrieved,
            "version_aliases": {".".join(v.split(".")[:2]): v for v in versions},
            "versions": {v: {**entry, "image_tags": {"py312": f"{v}-gpu-py312"}, "registries": regions}
                         for v, regions in versions.items()},
            "domains": {"us-east-1": "amazonaws.com"}, "torch_distributed_gpu_versions": list(versions),
            "smddp_versions": [], "smp_v1": {"versions": [], "instance_types": []},
            "smp_v2": {"versions": {}, "instance_types": []},
            "inference": {"version_aliases": {}, "versions": {}}}


def test_regenerating_keeps_what_only_the_other_sdk_knows_with_its_source():
    v2 = _catalog("2.257.7", {"2.7.1": {"us-east-1": "1"}, "2.8.0": {"us-east-1": "1"}}, "2026-11-29")
    v3 = _catalog("3.27.0", {"2.8.0": {"us-east-1": "1", "me-west-1": "2"}, "2.13": {"us-east-1": "1"}})
    del v3["versions"]["2.13"]["py_versions"][:]
    for fresh, previous in ((v3, v2), (v2, v3)):  # either SDK regenerates the other's file: the same catalog
        merged = sdk_frameworks.merge(fresh, previous)
        assert list(merged["versions"]) == ["2.7.1", "2.8.0", "2.13"]
        assert merged["source"] == v3["source"] and merged["versions"]["2.8.0"] == v3["versions"]["2.8.0"]
        kept = {"source": v2["source"], "retrieved": "2026-11-29", "versions": ["2.7.1"]}
        assert merged["also_from"] == [kept]
        assert merged["torch_distributed_gpu_versions"] == ["2.7.1", "2.8.0", "2.13"]
    packed = sdk_frameworks.pack(sdk_frameworks.merge(v3, v2))
    assert packed["registry_sets"] == {"set0": {"us-east-1": "1"},
                                       "set1": {"us-east-1": "1", "me-west-1": "2"}}
    assert sdk_frameworks.unpack(packed) == sdk_frameworks.merge(v3, v2)
    assert sdk_frameworks.merge(v3, None) is v3
