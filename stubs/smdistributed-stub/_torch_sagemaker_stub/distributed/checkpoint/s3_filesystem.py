"""SMP's S3 file system for checkpoints, not emulated: save to a local path (SageMaker uploads /opt/ml/checkpoints)."""

from torch.sagemaker._not_emulated import refuser

_WHY = "checkpoints go to local paths locally; SageMaker uploads /opt/ml/checkpoints to the job's checkpoint S3 URI"
__getattr__ = refuser(__name__, {"S3FileSystem": _WHY, "format_s3_path": _WHY, "is_s3_uri": _WHY})
