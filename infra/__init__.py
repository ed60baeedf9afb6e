"""AWS set-up for smjobs: the execution role and the project bucket, least privilege.

``policies`` holds the documents; ``template`` renders them as CloudFormation (``smjobs.cfn.yaml``), which
``stack`` deploys; ``aws`` applies the same documents with boto3 (the demo, the tests, ``--create-infra``);
``lint`` runs cfn-lint, checkov and parliament over both. Every function takes boto3 clients; nothing here creates
a client or reads credentials by itself.
"""

from smjobs.infra.aws import ensure_bucket, ensure_execution_role, execution_role_policy
from smjobs.infra.policies import DEFAULT_ROLE_NAME, STACK_NAME, default_bucket_name

__all__ = [
    "DEFAULT_ROLE_NAME",
    "STACK_NAME",
    "default_bucket_name",
    "ensure_bucket",
    "ensure_execution_role",
    "execution_role_policy",
]
