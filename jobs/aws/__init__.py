"""aws: everything that talks to AWS. The only wing that imports boto3 or the SageMaker SDK.

Lives here: ``context`` (one boto3 session and the region, profile and endpoint it resolves), ``submit``
(sending a built request), ``tuning`` (sending a tuning request, reading a tuning job), ``account`` (where the
execution role and bucket come from), ``quotas`` (Service Quotas before submit), ``lifecycle`` (stop, list,
wait, logs, cost), ``job_store`` (where each submitted job went).

May import: every wing below ``api`` except ``cli`` (it sends what they build), and ``smjobs.infra``.
Importing this package imports nothing: clients are made when a command needs them.
"""
