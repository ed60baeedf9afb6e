"""Where a job's region comes from when neither ``--region`` nor the spec names one: the AWS CLI's own lookup.

``AWS_REGION``, then botocore's resolution for the profile: ``AWS_DEFAULT_REGION``, then the ``region`` of the
profile in the AWS config file (``AWS_CONFIG_FILE``, default ``~/.aws/config``). The profile is ``--profile``, else
``AWS_DEFAULT_PROFILE``, else ``AWS_PROFILE``, else ``default`` (botocore's order); a named profile must exist in the
config or the shared credentials file, as botocore requires. Here, below every wing that needs it, so that
validation's region checks and the commands that call AWS agree on the region.

The files are read with botocore's own parser (``botocore.configloader``, which imports none of botocore's client
machinery, a fifth of a second that every command would pay); ``tests/unit/aws/test_region.py`` holds the answers
to botocore's ``Session.get_config_variable("region")``. Reading the config makes no call; of the credentials file
only the profile names are used.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


class RegionError(ValueError):
    """No region could be resolved, or the named profile does not exist."""


def _file(variable: str, default: str) -> Path:
    return Path(os.path.expanduser(os.environ.get(variable) or default))


@cache
def _parsed(path: Path, mtime_ns: int, credentials: bool) -> dict:
    """botocore's reading of one file, once per version of it: the config file's profiles (``load_config``, whose
    sections are ``[profile name]``), or the credentials file's sections (``raw_config_parse``, ``[name]``)."""
    import botocore.configloader
    import botocore.exceptions

    try:
        if credentials:
            return botocore.configloader.raw_config_parse(str(path))
        return botocore.configloader.load_config(str(path)).get("profiles", {})
    except botocore.exceptions.ConfigNotFound:
        return {}


def _profiles(path: Path, credentials: bool = False) -> dict:
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _parsed(path, mtime_ns, credentials)


def profile_name(profile: str | None = None) -> str:
    """The profile botocore uses: ``profile``, else ``AWS_DEFAULT_PROFILE``, else ``AWS_PROFILE``, else default."""
    return profile or os.environ.get("AWS_DEFAULT_PROFILE") or os.environ.get("AWS_PROFILE") or "default"


def profile_config(profile: str | None = None) -> dict:
    """The config file's settings of the profile (``profile_name``); raises RegionError when a named profile is in
    neither the config nor the credentials file."""
    name = profile_name(profile)
    config = _profiles(_file("AWS_CONFIG_FILE", "~/.aws/config"))
    if name != "default" and name not in config and name not in _profiles(
            _file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), credentials=True):
        raise RegionError(f"The config profile ({name}) could not be found. To fix: name a profile from "
                          "`aws configure list-profiles`, or unset AWS_PROFILE.")
    return config.get(name, {})


def configured_region(profile: str | None = None) -> str | None:
    """``AWS_REGION``, else what botocore resolves for ``profile`` (``AWS_DEFAULT_REGION``, the config file)."""
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    if os.environ.get("AWS_DEFAULT_REGION"):  # botocore reads the variable before the profile: no profile check
        return os.environ["AWS_DEFAULT_REGION"]
    return profile_config(profile).get("region") or None


def configured_region_and_source(profile: str | None = None) -> tuple[str | None, str]:
    """``configured_region`` and where it came from, as a problem names it (``$AWS_REGION``, the AWS config)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    try:
        found = configured_region(profile)
    except RegionError:
        return None, ""
    return (found, f"the AWS config (profile {profile_name(profile)})") if found else (None, "")
