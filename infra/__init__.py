"""AWS set-up for smjobs: the execution role and the bucket, least privilege, idempotent.

Every function takes boto3 clients; nothing here creates a client or reads credentials by itself.
"""

from smjobs.infra.aws import (
    DEFAULT_ROLE_NAME,
    default_bucket_name,
    ensure_bucket,
    ensure_execution_role,
    execution_role_policy,
)

__all__ = [
    "DEFAULT_ROLE_NAME",
    "default_bucket_name",
    "ensure_bucket",
    "ensure_execution_role",
    "execution_role_policy",
]
