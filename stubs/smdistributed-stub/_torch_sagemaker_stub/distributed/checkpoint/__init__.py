"""``torch.sagemaker.distributed.checkpoint``: SMP v2's checkpoint API over torch.distributed.checkpoint (DCP).

``state_dict_saver.save`` / ``async_save`` / ``maybe_finalize_async_calls``, ``state_dict_loader.load``,
``async_utils.AsyncCallsQueue``, ``filesystem.DistributedFileSystemReader``/``Writer`` and
``state_dict_utils`` (``sm_state_dict_type``, ``SMStateDictType``, ``init_optim_state``) take AWS's documented
arguments and run DCP's own save, asynchronous save and load on local paths. S3 URLs (``s3://``, which SMP
writes through its own S3 file system) raise NotImplementedError: write to a local path such as
``/opt/ml/checkpoints``, which SageMaker uploads.
"""
