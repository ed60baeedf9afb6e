"""SMP's file-system reader and writer: DCP's, on local paths."""

from __future__ import annotations

from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.sagemaker.distributed.checkpoint._common import local_path


class DistributedFileSystemReader(FileSystemReader):
    def __init__(self, path, *args, **kwargs):
        super().__init__(local_path(path, "DistributedFileSystemReader"), *args, **kwargs)


class DistributedFileSystemWriter(FileSystemWriter):
    def __init__(self, path, *args, **kwargs):
        super().__init__(local_path(path, "DistributedFileSystemWriter"), *args, **kwargs)
