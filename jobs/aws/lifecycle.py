"""A submitted job's life after submit: stop it, list the project's jobs, wait for one, follow its logs, price it.

Every function takes an ``AwsContext`` and makes only the calls it names (DescribeTrainingJob, StopTrainingJob,
Search, CloudWatch Logs); ``smjobs.aws.job_store`` remembers where each job went so the commands find it again.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from smjobs import catalog
from smjobs.request.training import MANAGED_TAG, SPEC_TAG

TERMINAL = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# How a rank's line starts in a job's log: torchrun's "[default3]:" and Open MPI's "[1,mpirank:3,algo-1]<stdout>:"
RANK_LINE = re.compile(r"^\[(?:default(\d+)|\d+,mpirank:(\d+),[^\]]*)\](?:<std\w+>)?:")


@dataclass(frozen=True)
class LogRecord:
    """One line of a job's log: the host whose stream it is in, the rank the line names (else None) and the line
    without that prefix; ``raw`` as written."""

    host: str
    rank: int | None
    message: str
    raw: str


def split_rank(message: str) -> tuple[int | None, str]:
    """The rank a log line names (torchrun's and Open MPI's prefixes), and the line without the prefix."""
    match = RANK_LINE.match(message)
    if match is None:
        return None, message
    rest = message[match.end():]
    return int(match.group(1) or match.group(2)), rest[1:] if rest.startswith(" ") else rest


def labelled(host: str, message: str) -> str:
    """``[host] line``, or ``[host rank N] line`` when the line says which rank wrote it."""
    rank, rest = split_rank(message)
    return f"[{host}] {message}" if rank is None else f"[{host} rank {rank}] {rest}"


def describe(aws, name: str) -> dict:
    return aws.client("sagemaker").describe_training_job(TrainingJobName=name)


def stop(aws, name: str) -> str:
    """Stop ``name`` if it is running; returns the status it was in. SageMaker sends SIGTERM to the training
    processes and, for spot jobs with checkpoints, keeps what was uploaded."""
    status = describe(aws, name)["TrainingJobStatus"]
    if status == "InProgress":
        aws.client("sagemaker").stop_training_job(TrainingJobName=name)
    return status


@dataclass(frozen=True)
class JobRow:
    name: str
    status: str
    created: _dt.datetime | None
    instances: str
    spec: str


def list_jobs(aws, *, statuses: tuple[str, ...] = (), since: _dt.datetime | None = None, limit: int = 50) -> list[JobRow]:
    """The project's training jobs (tag ``smjobs:managed-by=smjobs``), newest first, by SageMaker's Search."""
    client = aws.client("sagemaker")
    expression = {"Filters": [{"Name": f"Tags.{MANAGED_TAG[0]}", "Operator": "Equals", "Value": MANAGED_TAG[1]}]}
    rows: list[JobRow] = []
    pages = client.get_paginator("search").paginate(Resource="TrainingJob", SearchExpression=expression,
                                                    SortBy="CreationTime", SortOrder="Descending")
    for page in pages:
        for result in page.get("Results", []):
            job = result.get("TrainingJob", {})
            created = job.get("CreationTime")
            if statuses and job.get("TrainingJobStatus") not in statuses:
                continue
            if since is not None and created is not None and created < since:
                continue
            resources = job.get("ResourceConfig", {})
            tags = {t["Key"]: t["Value"] for t in job.get("Tags", [])}
            rows.append(JobRow(job.get("TrainingJobName", "?"), job.get("TrainingJobStatus", "?"), created,
                               f"{resources.get('InstanceCount', '?')} x {resources.get('InstanceType', '?')}",
                               tags.get(SPEC_TAG, "")))
        if len(rows) >= limit:
            break
    rows.sort(key=lambda r: r.created or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc), reverse=True)
    return rows[:limit]


def parse_since(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """"2h", "3d", "45m" before now, or an ISO date/time; raises ValueError otherwise."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - _dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])
    when = _dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def wait(aws, name: str, *, poll_s: float = 30.0, on_change: Callable[[dict], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> dict:
    """Poll DescribeTrainingJob until the job ends; ``on_change`` sees each new (status, secondary status)."""
    last = None
    while True:
        job = describe(aws, name)
        state = (job.get("TrainingJobStatus"), job.get("SecondaryStatus"))
        if state != last and on_change is not None:
            on_change(job)
        last = state
        if job.get("TrainingJobStatus") in TERMINAL:
            return job
        sleep(poll_s)


def _streams(client, name: str) -> list[str]:
    try:
        paginator = client.get_paginator("describe_log_streams")
        return [s["logStreamName"] for page in paginator.paginate(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
                for s in page["logStreams"]]
    except client.exceptions.ResourceNotFoundException:
        return []


def log_lines(aws, name: str, *, follow: bool = False, poll_s: float = 10.0,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The job's log lines, one stream per host, each prefixed with its host and, when the line names it, its rank
    ("[algo-1-1234 rank 3]"); ``follow`` as in ``log_records``."""
    for record in log_records(aws, name, follow=follow, poll_s=poll_s, sleep=sleep):
        yield labelled(record.host, record.raw)


def log_records(aws, name: str, *, follow: bool = False, poll_s: float = 10.0,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[LogRecord]:
    """The job's log lines as ``LogRecord``s, one stream per host. With ``follow``, keep reading new lines (and new
    hosts' streams) until a pass that began after the job ended has drained them."""
    client = aws.client("logs")
    tokens: dict[str, str | None] = {}
    while True:
        done = follow and describe(aws, name).get("TrainingJobStatus") in TERMINAL  # read before draining
        for stream in _streams(client, name):
            host = stream.split("/", 1)[-1]
            while True:
                kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                if tokens.get(stream):
                    kwargs["nextToken"] = tokens[stream]
                events = client.get_log_events(**kwargs)
                for event in events["events"]:
                    rank, rest = split_rank(event["message"])
                    yield LogRecord(host, rank, rest, event["message"])
                unchanged = events.get("nextForwardToken") == tokens.get(stream)
                tokens[stream] = events.get("nextForwardToken")
                if not events["events"] or unchanged:
                    break
        if not follow or done:  # the job had ended before this pass began: the pass read everything it wrote
            return
        sleep(poll_s)


@dataclass(frozen=True)
class Cost:
    name: str
    status: str
    instance_type: str
    instance_count: int
    usd_per_hour: float | None
    """On-demand price of one instance in the job's region (catalog), None when unpriced."""
    price_source: str
    training_s: int
    billable_s: int
    spot: bool

    @property
    def usd(self) -> float | None:
        return None if self.usd_per_hour is None else self.billable_s / 3600 * self.instance_count * self.usd_per_hour

    @property
    def on_demand_usd(self) -> float | None:
        """What the same training time would have cost on demand (equals ``usd`` for on-demand jobs)."""
        if self.usd_per_hour is None:
            return None
        return self.training_s / 3600 * self.instance_count * self.usd_per_hour

    @property
    def spot_savings(self) -> float | None:
        """SageMaker's own measure: 1 - billable / training time."""
        return 1 - self.billable_s / self.training_s if self.spot and self.training_s else None


def cost(aws, name: str) -> Cost:
    """Billable seconds x instances x the catalog's on-demand price. SageMaker bills managed spot at that price for
    fewer billable seconds, so the saving is the share of training time not billed."""
    job = describe(aws, name)
    resources = job.get("ResourceConfig", {})
    instance_type = resources.get("InstanceType") or "?"
    price = catalog.prices().price(instance_type, aws.region)
    training_s = int(job.get("TrainingTimeInSeconds") or 0)
    billable_s = int(job.get("BillableTimeInSeconds") if job.get("BillableTimeInSeconds") is not None else training_s)
    return Cost(name, job.get("TrainingJobStatus", "?"), instance_type, int(resources.get("InstanceCount") or 0),
                price.usd_per_hour if price else None,
                f"{price.source} ({price.retrieved or 'undated'})" if price else f"no price for {instance_type} in {aws.region}",
                training_s, billable_s, bool(job.get("EnableManagedSpotTraining")))
