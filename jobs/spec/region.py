"""Where a job's region comes from when neither ``--region`` nor the spec names one: the AWS CLI's own lookup.

``AWS_REGION``, then botocore's resolution for the profile (``AWS_DEFAULT_REGION``, then the ``region`` of the
profile in the AWS config file; the profile is ``--profile``, else ``AWS_PROFILE``, else ``default``). Here, below
every wing that needs it, so that validation's region checks and the commands that call AWS agree on the region.
Reading the config reads no credentials and makes no call; botocore is imported on use.
"""

from __future__ import annotations

import os


class RegionError(ValueError):
    """No region could be resolved, or the named profile does not exist."""


def configured_region(profile: str | None = None) -> str | None:
    """``AWS_REGION``, else what botocore resolves for ``profile`` (``AWS_DEFAULT_REGION``, the config file)."""
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    import botocore.exceptions
    import botocore.session

    try:
        return botocore.session.Session(profile=profile).get_config_variable("region")
    except botocore.exceptions.ProfileNotFound as exc:
        raise RegionError(f"{exc}. To fix: name a profile from `aws configure list-profiles`, or unset AWS_PROFILE.") from None


def configured_region_and_source(profile: str | None = None) -> tuple[str | None, str]:
    """``configured_region`` and where it came from, as a problem names it (``$AWS_REGION``, the AWS config)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    try:
        found = configured_region(profile)
    except RegionError:
        return None, ""
    named = profile or os.environ.get("AWS_PROFILE") or "default"
    return (found, f"the AWS config (profile {named})") if found else (None, "")
