"""The spec's ``tracking`` section: where a job's parameters, metrics and model go in MLflow.

On SageMaker, a managed MLflow tracking server or app (``tracking_server_arn``) reaches the request as its
``MlflowConfig``; any other server (``tracking_uri``) reaches the container as the job's environment. Locally,
``smjobs run`` logs to the given URI, or to a SQLite store in the run's work folder when there is none or the
server is SageMaker's (a local run calls no AWS API). The script logs through ``smjobs_runtime.start_tracking``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from smjobs.spec.field_docs import describe_fields

# CreateTrainingJob's MlflowConfig.MlflowResourceArn (botocore's service model), with the two resource kinds
# SageMaker's API reference names
MLFLOW_ARN_PATTERN = r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:mlflow-(tracking-server|app)/.+$"
# AIMlflowConfig's experiment and run names: what every MLflow backend smjobs meets accepts
MLFLOW_NAME_PATTERN = r"^[a-zA-Z0-9\-_./]+$"


class MlflowSettings(BaseModel):
    """An MLflow tracking server and the experiment a job's run goes into."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    tracking_server_arn: str | None = Field(default=None, pattern=MLFLOW_ARN_PATTERN, max_length=2048)
    """SageMaker managed MLflow: the ARN of a tracking server or MLflow app
    (``arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>``). Sent as the job's MlflowConfig."""
    tracking_uri: str | None = Field(default=None, min_length=1, max_length=2048)
    """Any other MLflow server (``https://mlflow.example.com``) or store (``sqlite:///mlflow.db``): the container
    gets it as its tracking URI. At most one of this and tracking_server_arn; with neither, only local runs track
    (to a SQLite store in the work folder)."""
    experiment: str | None = Field(default=None, pattern=MLFLOW_NAME_PATTERN, max_length=256)
    """Experiment name (created when missing); default: the spec's name."""
    run_name: str | None = Field(default=None, pattern=MLFLOW_NAME_PATTERN, max_length=256)
    """Run name; default: the training job's name."""


class TrackingSettings(BaseModel):
    """Experiment tracking for the job."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mlflow: MlflowSettings
    """MLflow: the server and the experiment."""


describe_fields(__name__)
