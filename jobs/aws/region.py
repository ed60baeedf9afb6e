"""Which region and profile a command uses, resolved as the AWS CLI resolves them.

Order: ``--region`` (or the Python ``region=``), then the spec's ``region``, then ``AWS_REGION``, then
``AWS_DEFAULT_REGION`` and the profile's ``region`` in the AWS config file (botocore's own lookup: ``--profile``,
else ``AWS_PROFILE``, else ``default``). An emulator endpoint (``--endpoint-url``) with none of them means
us-east-1, as the emulators' own default. No region at all is an error that says how to set one: smjobs never
picks a region silently. The lookup below ``--region`` and the spec is ``smjobs.spec.region``'s, which validation
shares.
"""

from __future__ import annotations

from smjobs.spec.region import RegionError, configured_region  # noqa: F401  (aws/ callers import them here)

EMULATOR_REGION = "us-east-1"


def resolve_region(region: str | None = None, spec_region: str | None = None, *, profile: str | None = None,
                   endpoint_url: str | None = None, what: str = "") -> str:
    """The region a command talks to AWS in; raises RegionError when there is none."""
    found = region or spec_region or configured_region(profile)
    if found:
        return found
    if endpoint_url:
        return EMULATOR_REGION
    named = f" (profile {profile})" if profile else ""
    raise RegionError(f"no AWS region{what}{named}. To fix: pass --region, set AWS_REGION, add region to the spec, "
                      "or run `aws configure` to write one into ~/.aws/config.")
