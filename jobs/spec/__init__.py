"""spec: what the user asks for. The frozen ``JobSpec`` and its sections, reading spec files, the
hyperparameter wire format, the distribution strategies and their degree arithmetic.

Lives here: ``job`` (JobSpec and its sections), ``file`` (a spec file read safely as plain data), ``tuning``
(the tuning section), ``strategies`` (typed distribution settings), ``degrees`` (dp x pp x tp arithmetic),
``hyperparameters`` (how values travel to the script), ``region`` (the AWS CLI's region lookup, shared by
validation and the commands that call AWS).

May import: ``smjobs.errors``, third-party parsing libraries (pydantic, yaml) and botocore's config lookup. Nothing else of smjobs: every
other wing reads the spec, the spec reads none of them.
"""

from smjobs.spec.job import ENTRY_POINTS_DIR, Compute, JobSpec, MetricDefinition, example_path, read_spec_data

__all__ = ["ENTRY_POINTS_DIR", "Compute", "JobSpec", "MetricDefinition", "example_path", "read_spec_data"]
