"""smjobs' rules about where and how a job runs: its name, instances, training image, distribution strategy and
parallel degrees, and region. Each ``check_*`` takes a parsed spec and returns its problems."""

from __future__ import annotations

import difflib
import re
import warnings

from smjobs import catalog
from smjobs.checks import service_model
from smjobs.errors import Problem
from smjobs.request.training import JOB_NAME_SUFFIX_CHARS, processes_per_host
from smjobs.request.training import source_dir as request_source_dir
from smjobs.spec import degrees
from smjobs.spec.job import ENTRY_POINTS_DIR, JobSpec
from smjobs.spec.region import configured_region_and_source
from smjobs.spec.strategies import (
    FSDP,
    SMDDP,
    ModelParallelV1,
    ModelParallelV2,
    NaiveModelParallel,
    PipelineParallel,
)

MAX_RUN_S = 28 * 24 * 3600  # SageMaker's ceiling for MaxRuntimeInSeconds (28 days)
JOB_NAME_MAX_CHARS = 63
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
# Architectures without bf16 tensor cores.
NO_BF16 = {"Volta", "Turing"}
# An ECR image, which SageMaker pulls without further configuration: account, region, the partition's DNS
# suffix, repository (ECR's rule: lowercase components split by /), then a tag (Docker's rule), a sha256
# digest, or both.
# botocore's model only bounds TrainingImage (255 characters of `.*`), so the shape is smjobs' own rule.
ECR_IMAGE_PATTERN = re.compile(
    r"\d{12}\.dkr\.ecr(-fips)?\.[a-z]{2,4}(-[a-z]+)+-\d+\.[a-z0-9-]+(\.[a-z0-9-]+)+/"
    r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?P<digest>@sha256:[a-f0-9]{64})?"
)
IMAGE_URI_EXAMPLE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-training:1.0"
TRAINING_IMAGE_MEMBER = "CreateTrainingJob.AlgorithmSpecification.TrainingImage"


def check_name(spec: JobSpec) -> list[Problem]:
    out = []
    limit = JOB_NAME_MAX_CHARS - JOB_NAME_SUFFIX_CHARS
    if not JOB_NAME_PATTERN.fullmatch(spec.name):
        out.append(Problem("name", f"{spec.name!r} is not a valid SageMaker job name.",
                           "use letters, digits and single or repeated hyphens, starting and ending with a letter or digit."))
    if len(spec.name) > limit:
        out.append(Problem("name", f"has {len(spec.name)} characters; at most {limit} leave room for the "
                           f"{JOB_NAME_SUFFIX_CHARS}-character timestamp in the 63-character job name.",
                           f"shorten it, e.g. {spec.name[:limit].rstrip('-')!r}."))
    return out


def _gpu_alternatives(min_gpus: int, family: str | None = None, limit: int = 4) -> str:
    cands = [t for t in catalog.instances().types.values() if t.gpu_count >= min_gpus]
    cands.sort(key=lambda t: (t.family != family, t.gpu_count, t.gpu_memory_gb, t.name))
    return ", ".join(f"{t.name} ({t.gpu_count} x {t.gpu_model})" for t in cands[:limit])


def _more_gpus_fix(processes: int, instance) -> str:
    fix = f"set processes_per_host to at most {instance.gpu_count} (or leave it out)"
    alternatives = _gpu_alternatives(processes, instance.family)
    if alternatives:
        return f"{fix}, or choose an instance with {processes} GPUs: {alternatives}."
    most = max(t.gpu_count for t in catalog.instances().types.values())
    return (f"{fix}; no SageMaker GPU instance has {processes} GPUs (the most is {most}): use more instances "
            "(compute.instance_count) for more processes.")


def check_compute(spec: JobSpec) -> list[Problem]:
    out = []
    c = spec.compute
    name = c.instance_type
    instance = catalog.instances().get(name)
    if instance is None:
        excluded = catalog.instances().excluded.get(name)
        known = list(catalog.instances().types)
        if excluded:
            out.append(Problem("compute.instance_type", f"{name} is not supported: {excluded}",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        elif re.fullmatch(r"ml\.(trn|inf)\w*\.\w+", name):
            out.append(Problem("compute.instance_type", f"{name} is an AWS Trainium/Inferentia instance; smjobs' strategies train on NVIDIA GPUs.",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        elif re.fullmatch(r"ml\.[a-z]\d\w*(-flex)?\.\w+", name) and not name.startswith(("ml.g", "ml.p")):
            out.append(Problem("compute.instance_type", f"{name} is a CPU instance; torch_distributed and SMDDP jobs need GPU instances.",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        else:
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            out.append(Problem("compute.instance_type", f"{name!r} is not a GPU training instance type in smjobs' catalog.",
                               f"{hint}GPU families: {', '.join(sorted({t.family for t in catalog.instances().types.values()}))}."))
    if c.instance_count < 1:
        out.append(Problem("compute.instance_count", f"is {c.instance_count}; a job needs at least one instance.", "set instance_count to 1 or more."))
    if c.volume_size_gb < 1:
        out.append(Problem("compute.volume_size_gb", f"is {c.volume_size_gb}; the volume needs at least 1 GB.", "set volume_size_gb to 1 or more (100 is typical)."))
    if not 1 <= c.max_run_s <= MAX_RUN_S:
        out.append(Problem("compute.max_run_s", f"is {c.max_run_s}; SageMaker allows 1 to {MAX_RUN_S} seconds (28 days).",
                           "set max_run_s within that range and checkpoint longer training."))
    if c.use_spot:
        if c.max_wait_s is None:
            out.append(Problem("compute.max_wait_s", "is required with use_spot: it bounds waiting for spot capacity plus training.",
                               f"set max_wait_s to at least max_run_s ({c.max_run_s})."))
        elif c.max_wait_s < c.max_run_s:
            out.append(Problem("compute.max_wait_s", f"is {c.max_wait_s}, less than max_run_s ({c.max_run_s}); SageMaker rejects that.",
                               f"set max_wait_s to at least {c.max_run_s}, or lower max_run_s."))
        if not spec.checkpoint_s3_uri:
            out.append(Problem("checkpoint_s3_uri", "is required with use_spot: an interrupted spot job resumes from its checkpoints.",
                               "set checkpoint_s3_uri to an s3:// prefix the script's checkpoints are synced to."))
    elif c.max_wait_s is not None:
        out.append(Problem("compute.max_wait_s", "only applies to spot training.", "remove max_wait_s or set use_spot: true."))
    return out


def check_framework(spec: JobSpec) -> list[Problem]:
    fw = catalog.frameworks()
    if spec.compute.image_uri is not None:
        return _check_image_uri(spec)
    if isinstance(spec.distribution, ModelParallelV2):
        return _check_smp_v2_image(spec)
    full = fw.resolve(spec.framework_version)
    if full is None:
        newest = sorted(fw.py_versions, key=catalog.version_key)[-6:]
        return [Problem("framework_version", f"PyTorch {spec.framework_version!r} has no SageMaker training image.",
                        f"use one of: {', '.join(newest)} (or an older version with an image).")]
    # an image whose tag names no Python is picked whatever py_version says (the SDK ignores it too)
    if fw.py_versions[full] and spec.py_version not in fw.py_versions[full]:
        return [Problem("py_version", f"PyTorch {full} training images exist for {', '.join(fw.py_versions[full])}, not {spec.py_version!r}.",
                        f"set py_version to {fw.py_versions[full][-1]!r}.")]
    return []


def _check_image_uri(spec: JobSpec) -> list[Problem]:
    """The user's own image: the service's bound on TrainingImage, then an ECR image's shape. Nothing in
    SageMaker's image table applies to it, so a good one is accepted with a warning of what it must hold."""
    uri = spec.compute.image_uri
    request = {"AlgorithmSpecification": {"TrainingImage": uri, "TrainingInputMode": "File"}}
    refused = [Problem("compute.image_uri", f"{p.message} ({TRAINING_IMAGE_MEMBER}, botocore's model).",
                       f"give the image's URI on one line, e.g. {IMAGE_URI_EXAMPLE}.")
               for p in service_model.check(request) if p.path == TRAINING_IMAGE_MEMBER]
    if refused:  # what the service refuses comes first: the shape is moot until then
        return refused
    shape = ECR_IMAGE_PATTERN.fullmatch(uri)
    shown = repr(uri if len(uri) <= 80 else uri[:77] + "...")
    if shape is None:
        return [Problem("compute.image_uri", f"{shown} is not an ECR image URI.",
                        "give <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> (or "
                        f"@sha256:<digest>), e.g. {IMAGE_URI_EXAMPLE} (push an image from elsewhere to ECR "
                        "first), or remove image_uri to run in SageMaker's image of framework_version.")]
    if not (shape["tag"] or shape["digest"]):
        return [Problem("compute.image_uri", f"{shown} names no tag or digest.",
                        f"add :<tag> or @sha256:<digest>, e.g. {uri}:1.0, so the job runs the image you "
                        "tested.")]
    library = _LIBRARIES.get(type(spec.distribution))
    name = library(catalog.frameworks())[0] if library else None
    carries = f" and {name} (distribution.type {spec.distribution.type})" if name else ""
    # One warning per image (Python shows a repeated message once), however many times the spec is checked.
    warnings.warn(f"compute.image_uri {uri}: smjobs does not check this image's PyTorch, Python or "
                  "libraries. For script mode it must run SageMaker's training toolkit (sagemaker-training "
                  f"and sagemaker-pytorch-training, as SageMaker's PyTorch images do){carries}.",
                  stacklevel=2)
    return []


def _check_smp_v2_image(spec: JobSpec) -> list[Problem]:
    images = catalog.frameworks().smp_v2_images
    image = images.get(spec.framework_version)
    if image is None:
        return [Problem("framework_version", f"SageMaker model parallelism v2 has no image for PyTorch {spec.framework_version!r}.",
                        f"use one of: {', '.join(images)}.")]
    if spec.py_version not in image.py_versions:
        return [Problem("py_version", f"the SMP v2 image for PyTorch {spec.framework_version} is built for {', '.join(image.py_versions)}, not {spec.py_version!r}.",
                        f"set py_version to {image.py_versions[0]!r}.")]
    return []


def check_distribution(spec: JobSpec) -> list[Problem]:
    out = []
    d = spec.distribution
    instance = catalog.instances().get(spec.compute.instance_type)
    fw = catalog.frameworks()
    # the user's own image: its versions and libraries are not in smjobs' table (instance rules still hold)
    full = None if spec.compute.image_uri else fw.resolve(spec.framework_version)
    if d.processes_per_host is not None and d.processes_per_host < 1:
        out.append(Problem("distribution.processes_per_host", f"is {d.processes_per_host}; at least one process per host.", "set it to 1 or more, or leave it out to use one per GPU."))
    if instance is not None and d.processes_per_host is not None and d.processes_per_host > instance.gpu_count:
        out.append(Problem("distribution.processes_per_host",
                           f"{d.processes_per_host} processes on {instance.name}, which has {instance.gpu_count} GPU{'s' if instance.gpu_count > 1 else ''}; each process needs its own GPU.",
                           _more_gpus_fix(d.processes_per_host, instance)))
    library = _LIBRARIES.get(type(d))
    if library is not None:
        out += _check_library(spec, full, *library(fw))
    elif full is not None and full not in fw.torch_distributed_gpu_versions:
        supported = [v for v in fw.torch_distributed_gpu_versions if catalog.version_key(v) >= (2,)]
        out.append(Problem("framework_version", f"SageMaker's torch_distributed launcher does not support PyTorch {full}.",
                           f"use one of: {', '.join(supported)}."))
    out += _check_degrees(spec, instance)
    if isinstance(d, FSDP):
        world = processes_per_host(spec) * spec.compute.instance_count
        if d.mixed_precision == "bf16" and instance is not None and instance.gpu_architecture in NO_BF16:
            out.append(Problem("distribution.mixed_precision", f"bf16 needs Ampere or newer GPUs; {instance.name} has {instance.gpu_model} ({instance.gpu_architecture}).",
                               "use mixed_precision: fp16 or fp32, or an Ampere+ instance (g5, g6, g6e, p4d, p5)."))
        if d.shard_degree is not None and d.sharding != "hybrid_shard":
            out.append(Problem("distribution.shard_degree", f"only applies to sharding: hybrid_shard (sharding is {d.sharding}).",
                               "remove shard_degree, or set sharding: hybrid_shard."))
        if d.sharding == "hybrid_shard":
            degree = d.shard_degree or processes_per_host(spec)
            if degree > world or world % degree:
                out.append(Problem("distribution.shard_degree", f"hybrid_shard groups of {degree} do not divide the {world} processes "
                                   f"({spec.compute.instance_count} instances x {processes_per_host(spec)} processes).",
                                   f"choose a shard_degree that divides {world}: {', '.join(str(k) for k in range(1, world + 1) if world % k == 0)}."))
    return out


# SageMaker's own distributed libraries: (name, instance types, PyTorch versions or None when the image
# check covers them, what to use instead).
_LIBRARIES = {
    SMDDP: lambda fw: ("SMDDP", fw.smddp_instance_types, fw.smddp_versions,
                       "distribution.type: ddp (torchrun + NCCL), which runs on every GPU instance"),
    ModelParallelV2: lambda fw: ("SageMaker model parallelism v2", fw.smp_v2_instance_types, None,
                                 "distribution.type: fsdp or pipeline (native PyTorch)"),
    ModelParallelV1: lambda fw: ("SageMaker model parallelism v1 (in maintenance)", fw.smp_v1_instance_types,
                                 fw.smp_v1_versions, "distribution.type: smp_v2 or pipeline"),
}


def _check_library(spec: JobSpec, full: str | None, name: str, instance_types, versions, instead: str) -> list[Problem]:
    out = []
    fw = catalog.frameworks()
    if spec.compute.instance_type not in instance_types:
        out.append(Problem("compute.instance_type", f"{name} does not run on {spec.compute.instance_type}; it needs {' or '.join(instance_types)}.",
                           f"choose one of those, or use {instead}."))
    if versions is not None and full is not None and full not in versions:
        last = versions[-1]
        py = f" (py_version {fw.py_versions[last][-1]})" if fw.py_versions[last] else ""
        out.append(Problem("framework_version", f"{name} has no release for PyTorch {full}; its last is {last}.",
                           f"set framework_version to {last}{py}, or use {instead}."))
    return out


def model_layers(hyperparameters: dict) -> int | None:
    """Layers a pipeline can split the bundled scripts' models into, from their hyperparameters."""
    model = hyperparameters.get("model")
    if model == "gpt" and isinstance(hyperparameters.get("n_layers"), int):
        return hyperparameters["n_layers"]
    if model == "mlp" and isinstance(hyperparameters.get("hidden_sizes"), list):
        return len(hyperparameters["hidden_sizes"]) + 1
    return None


def _check_degrees(spec: JobSpec, instance) -> list[Problem]:
    d = spec.distribution
    cluster = degrees.Cluster(spec.compute.instance_count, processes_per_host(spec), instance.gpu_count if instance else None)
    batch = spec.hyperparameters.get("global_batch_size")
    batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else None
    if isinstance(d, PipelineParallel):
        return degrees.check_pipeline(d, cluster, batch, model_layers(spec.hyperparameters))
    if isinstance(d, NaiveModelParallel):
        return degrees.check_naive(d, cluster, model_layers(spec.hyperparameters))
    if isinstance(d, ModelParallelV2):
        return degrees.check_smp_v2(d, cluster) or _check_batch_split(spec, cluster, batch, d.tensor_parallel_degree)
    if isinstance(d, ModelParallelV1):
        return degrees.check_smp_v1(d, cluster)
    return _check_batch_split(spec, cluster, batch, 1)


def _check_batch_split(spec: JobSpec, cluster, batch: int | None, tp_degree: int) -> list[Problem]:
    """The bundled train.py splits global_batch_size evenly over its data-parallel processes (the world over the
    tensor-parallel degree) and then over grad_accum_steps, and refuses at start-up when it cannot."""
    if request_source_dir(spec) != ENTRY_POINTS_DIR or spec.entry_point != "train.py":
        return []
    accum = spec.hyperparameters.get("grad_accum_steps", 1)
    if isinstance(accum, int) and not isinstance(accum, bool) and accum < 1:
        return [Problem("hyperparameters.grad_accum_steps", f"is {accum}; the bundled train.py divides the batch by it.",
                        "use 1 (no accumulation) or more.")]
    accum = accum if isinstance(accum, int) and not isinstance(accum, bool) else 1
    batch = 32 if batch is None else batch  # train.py's default global_batch_size
    dp = cluster.world_size // max(tp_degree, 1)
    if dp < 1 or batch % (dp * accum) == 0:
        return []
    multiple = dp * accum
    return [Problem("hyperparameters.global_batch_size",
                    f"{batch} does not split evenly over {dp} data-parallel processes x {accum} accumulation step(s); "
                    "the bundled train.py would refuse it at start-up.",
                    f"use a multiple of {multiple} (e.g. {max(multiple, batch // multiple * multiple)}), or change "
                    "the processes (distribution.processes_per_host, compute.instance_count).")]


def effective_region(spec: JobSpec, region: str | None) -> tuple[str | None, str]:
    """(the region a request would go to, where it came from): --region, the spec, then the AWS CLI's lookup
    (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's config), as the commands that call AWS resolve it."""
    if region:
        return region, "--region"
    if spec.region:
        return spec.region, "the spec's region"
    return configured_region_and_source()


def check_region(spec: JobSpec, region: str | None) -> list[Problem]:
    """The region, wherever it comes from, has the job's training image (and so is a SageMaker region)."""
    region, source = effective_region(spec, region)
    fw = catalog.frameworks()
    full = fw.resolve(spec.framework_version)
    if region is None or (full is None and spec.compute.image_uri is None):
        return []
    if spec.compute.image_uri is None and region not in fw.registries[full]:
        return [Problem("region", f"{region!r} (from {source}): PyTorch {full} training images are not published there.",
                        f"use one of: {', '.join(sorted(fw.registries[full])[:8])}, ...")]
    instance = catalog.instances().get(spec.compute.instance_type)  # auto and unknown types: checked elsewhere
    offered = catalog.prices().not_offered(spec.compute.instance_type, region) if instance else None
    if offered is not None:
        alike = sorted(t for t in offered.instance_types if (known := catalog.instances().get(t))
                       and known.gpu_count == instance.gpu_count)
        return [Problem("compute.instance_type", f"{spec.compute.instance_type} is not offered for training in {region} "
                        f"(from {source}; {offered.source}, read {offered.retrieved}).",
                        f"use a type offered there ({', '.join(alike[:6]) or 'see `smjobs prices show --region ' + region + '`'}), "
                        f"another region, or `smjobs prices refresh --region {region}` if the list is old.")]
    return []


def availability_unknown(spec: JobSpec, region: str | None) -> str | None:
    """Why the type's availability in the job's region could not be checked, or None when it was (or need not be).

    A region is checked against the training types its Price List SKUs list (``smjobs prices refresh``); without
    such a list, a shipped price in the region is the only evidence that the type is offered there."""
    region, source = effective_region(spec, region)
    prices = catalog.prices()
    region = region or prices.default_region
    name = spec.compute.instance_type
    if catalog.instances().get(name) is None or region in prices.offered or prices.price(name, region) is not None:
        return None
    return (f"{name} in {region} ({source or 'the default region'}): smjobs holds no list of the training types offered "
            f"there, so availability was not checked; `smjobs prices refresh --region {region}` records it from the "
            "AWS Price List API.")

