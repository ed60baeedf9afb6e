"""aws: everything that talks to AWS. The only wing that imports boto3 or the SageMaker SDK.

Lives here: ``context`` (one boto3 session and the region, profile and endpoint it resolves), ``submit``
(sending a built request with boto3), ``upload`` (the code archive, local channels and model archive it sends
first), ``tuning`` (sending a tuning request, reading a tuning job), ``account`` (where the execution role and
bucket come from), ``quotas`` (Service Quotas before submit), ``lifecycle`` (stop, list, wait, logs, cost),
``job_store`` (where each submitted job went), ``sdk`` and ``sdk_v3`` (the SageMaker SDK's own objects, v2's
Estimator and v3's ModelTrainer, built from the same request: the only modules that import the SDK).

May import: every wing below ``api`` except ``cli`` (it sends what they build), and ``smjobs.infra``.
Importing this package imports nothing: clients are made when a command needs them.
"""
