"""The catalogs agree with botocore's instance list and the installed SDK's image table."""

from __future__ import annotations

import botocore.session
import pytest

from smjobs import catalog

GPU_FAMILY_PREFIXES = ("ml.g", "ml.p")


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

    table = json.loads(resources.files("sagemaker").joinpath("image_uri_config/instance_gpu_info.json").read_text())
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


def test_framework_catalog_versions_have_images_in_the_installed_sdk():
    from sagemaker import image_uris

    fw = catalog.frameworks()
    for version, py_versions in fw.py_versions.items():
        for py in py_versions:
            for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"):
                ours = fw.image_uri(version, py, region)
                if ours is None:
                    continue
                theirs = image_uris.retrieve("pytorch", region, version=version, py_version=py,
                                             instance_type="ml.p4d.24xlarge", image_scope="training")
                assert ours == theirs


def test_inference_images_match_the_installed_sdk():
    from sagemaker import image_uris

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


@pytest.mark.parametrize("alias,full", [("2.7", "2.7.1"), ("2.5", "2.5.1"), ("2.8.0", "2.8.0"), ("2.9", None)])
def test_version_aliases(alias, full):
    assert catalog.frameworks().resolve(alias) == full


def test_launcher_support_lists_match_the_sdk():
    from sagemaker import fw_utils

    fw = catalog.frameworks()
    assert set(fw.torch_distributed_gpu_versions) <= set(fw_utils.TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS)
    assert set(fw.smddp_versions) <= set(fw_utils.SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS["pytorch"])
    # 2.4.1 is in the SDK's torch_distributed list but has no image: the catalog leaves it out.
    assert "2.4.1" not in fw.torch_distributed_gpu_versions
