"""A tuning's own MLflow run, whose children are its trials' runs: made by the local search before its first
trial (``search``) and by ``smjobs tune`` before it submits the tuning job to SageMaker (``smjobs.aws.tuning``).
MLflow is imported here only when a spec has a tracking section."""

from __future__ import annotations


def create_parent_run(tracking_uri: str, experiment: str, run_name: str, params: dict[str, str], *,
                      tags: dict[str, str] | None = None, artifact_location: str | None = None):
    """The run (in ``experiment``, created when missing) and its client: ``(client, run_id)``."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifact_location=artifact_location)
    run_id = client.create_run(experiment_id, run_name=run_name, tags=tags or {}).info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    return client, run_id
