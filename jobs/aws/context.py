"""The AWS context a command works in: one boto3 session, optionally pinned to one endpoint (e.g. moto).

Creating it makes no network call and reads no credentials; botocore reads them at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boto3


class _PinnedEndpointSession(boto3.session.Session):
    """A boto3 session whose every client and resource goes to one endpoint.

    The SageMaker SDK builds some clients itself, with explicit endpoints (STS's regional one);
    pinning here is what makes ``--endpoint-url`` reach all of them.
    """

    def __init__(self, *args, endpoint_url: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.pinned_endpoint_url = endpoint_url
        self._fallback_credentials: dict | None = None

    def _pin(self, kwargs: dict) -> dict:
        kwargs["endpoint_url"] = self.pinned_endpoint_url
        if self._fallback_credentials is None:  # resolved at the first client, not at construction
            self._fallback_credentials = {} if self.get_credentials() else dict(_EMULATOR_CREDENTIALS)
        return {**self._fallback_credentials, **kwargs}

    def client(self, *args, **kwargs):
        return super().client(*args, **self._pin(kwargs))

    def resource(self, *args, **kwargs):
        return super().resource(*args, **self._pin(kwargs))


# An endpoint such as moto accepts any credentials; these are used only when none are configured.
_EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class AwsContext:
    """A boto3 session plus the endpoint every client uses; clients are made once and reused."""

    session: boto3.session.Session
    endpoint_url: str | None = None
    _clients: dict = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, region: str | None = None, endpoint_url: str | None = None, profile: str | None = None) -> AwsContext:
        if endpoint_url is None:
            return cls(boto3.session.Session(region_name=region, profile_name=profile))
        return cls(_PinnedEndpointSession(region_name=region, profile_name=profile, endpoint_url=endpoint_url), endpoint_url)

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def has_credentials(self) -> bool:
        """Whether AWS credentials are configured (an emulator endpoint needs none)."""
        return self.endpoint_url is not None or self.session.get_credentials() is not None

    def client(self, name: str):
        if name not in self._clients:
            self._clients[name] = self.session.client(name)
        return self._clients[name]
