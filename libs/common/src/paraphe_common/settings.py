"""Settings read from the environment once per service, typed, with defaults.

Every variable starts with ``PARAPHE_``. A service composes the mixins it needs; a required
setting that is missing or a value of the wrong type raises :class:`ConfigurationError`, whose
message names the variables and never their values (they may be secrets).
"""

from __future__ import annotations

import itertools
import json
import ssl
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PARAPHE_"


class ConfigurationError(Exception):
    """The environment does not describe a service that can start."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One JSON line per request costs as much as the request itself on the signing path; the
    # proxy logs requests already. make run turns it on.
    access_log: bool = False
    # Seconds given to in-flight requests after SIGTERM before the connections are closed.
    shutdown_timeout: float = Field(default=20.0, gt=0)
    # Seconds each dependency gets to answer a readiness check.
    readiness_timeout: float = Field(default=1.0, gt=0)
    # The networks of the proxies in front of the service (comma-separated CIDRs): only from a
    # peer in them is X-Forwarded-For believed, right to left (paraphe_common.security).
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )
    # Per-client rate limits overridden by name: {"signing": 300} (requests per the limit's
    # period; the names and defaults are paraphe_common.security's).
    client_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _read_proxy_networks(cls, value: Any) -> Any:
        return _comma_separated(value)


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    database_url: SecretStr
    database_pool_min_size: int = Field(default=1, ge=0)
    database_pool_max_size: int = Field(default=10, ge=1)
    database_connect_timeout: float = Field(default=5.0, gt=0)
    # Seconds a session may sit in an open transaction waiting for its client before the server
    # ends it: a client gone (a node cut off, a process frozen) cannot hold its row locks for
    # good. Far above the longest wait inside the services' transactions (the outbox's publish).
    database_idle_in_transaction_timeout: float = Field(default=60.0, ge=1)


def _holds_certificates(path: Path) -> Path:
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"holds no PEM certificate ({exc})") from None
    return path


# A file of PEM certificates (a certificate authority's) that servers are verified with.
CertificateAuthorityFile = Annotated[FilePath, AfterValidator(_holds_certificates)]


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


class RedisSettings(BaseSettings):
    """One Redis server (``PARAPHE_REDIS_URL``), or a Sentinel-managed group.

    With Sentinel, ``PARAPHE_REDIS_SENTINELS`` lists the sentinels (``host:port,...``) that are
    asked where the master named ``PARAPHE_REDIS_SENTINEL_MASTER`` is, at every (re)connection:
    after a failover, the client follows the new master by itself.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    redis_sentinels: Annotated[tuple[str, ...], NoDecode] = ()
    # After redis_sentinels: its validator needs to know whether sentinels were given.
    redis_url: SecretStr | None = Field(default=None, validate_default=True)
    redis_sentinel_master: str = Field(default="paraphe", min_length=1)
    # The password of the Redis servers and of the sentinels, when they ask for one (kept out
    # of PARAPHE_REDIS_URL, so that it can come from a Secret of its own).
    redis_password: SecretStr | None = None
    # The certificate authority the Redis servers' and the sentinels' certificates are
    # verified with: set, every connection is TLS (whatever the URL's scheme) and the name
    # connected to is checked against the certificate. None: servers without TLS (a test's own).
    redis_tls_ca: CertificateAuthorityFile | None = None
    # With sentinels; a PARAPHE_REDIS_URL names its database in its path.
    redis_database: int = Field(default=0, ge=0)
    redis_connect_timeout: float = Field(default=2.0, gt=0)
    # Connections one process may open: one per command in flight. redis-py's own default, 100,
    # fails the 101st at once (a 500 under a surge of sign-ins: docs/loadtest.md).
    redis_max_connections: int = Field(default=1024, ge=1)

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _read_sentinel_list(cls, value: Any) -> Any:
        return _comma_separated(value)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_host_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            _host_port(address)
        return value

    @field_validator("redis_url")
    @classmethod
    def _url_or_sentinels(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if "redis_sentinels" not in info.data:
            return value  # the sentinels are invalid, and said so already
        if value is None and not info.data["redis_sentinels"]:
            raise PydanticCustomError("missing", "PARAPHE_REDIS_URL or PARAPHE_REDIS_SENTINELS")
        if value is not None and info.data["redis_sentinels"]:
            raise ValueError("set PARAPHE_REDIS_URL or PARAPHE_REDIS_SENTINELS, not both")
        return value

    @property
    def redis_sentinel_addresses(self) -> list[tuple[str, int]]:
        return [_host_port(address) for address in self.redis_sentinels]


# counter.thresholds_reached.threshold is a PostgreSQL integer.
_LARGEST_THRESHOLD = 2**31 - 1


class ThresholdSettings(BaseSettings):
    """The totals that matter (counter emits an event at each; pages count towards them)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # 100,000 sends a petition to a committee, 500,000 may bring a debate in public session.
    # PARAPHE_THRESHOLDS: a JSON list or "a,b,c"; catalog, counter and moderation (which
    # allows the committee's follow-up after them) must be given the same.
    thresholds: Annotated[tuple[int, ...], NoDecode] = (100_000, 500_000)

    @field_validator("thresholds", mode="before")
    @classmethod
    def _read_threshold_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("thresholds")
    @classmethod
    def _positive_and_ascending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one threshold is needed")
        if not all(0 < threshold <= _LARGEST_THRESHOLD for threshold in value):
            raise ValueError(f"each threshold must be between 1 and {_LARGEST_THRESHOLD}")
        if any(lower >= higher for lower, higher in itertools.pairwise(value)):
            raise ValueError("thresholds must be in strictly ascending order")
        return value


class MarksSettings(BaseSettings):
    """How long intake's signed marks outlive their petition (paraphe_common.marks)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Days a petition's signed marks are kept in Redis once it ended (closed at its deadline,
    # or taken down): a signer is still told they signed meanwhile; then the counter forgets
    # them, and intake answers "no longer known" rather than "not signed". Counter and intake
    # must be given the same (the platform's ConfigMap).
    marks_kept_days: int = Field(default=30, ge=1, le=3650)


class NatsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # One server URL, or the URLs of a cluster's servers separated by commas: the client tries
    # them in turn, at start and whenever its connection is lost.
    nats_url: SecretStr
    # The password of this service's own NATS user, whose name is the service's
    # (paraphe_devstack.nats_access: what each may publish and subscribe to). None: a server
    # without users (a test's own, a developer's).
    nats_password: SecretStr | None = None
    # The certificate authority the NATS servers' certificates are verified with: set, the
    # connection is TLS, the server's name checked. None: a server without TLS (a test's own).
    nats_tls_ca: CertificateAuthorityFile | None = None
    nats_connect_timeout: float = Field(default=2.0, gt=0)
    # 1 on a single server; 3 on the production cluster.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.get_secret_value().split(",") if url.strip()]


S = TypeVar("S", bound=BaseSettings)


def load_settings(settings_class: type[S]) -> S:
    """Read ``settings_class`` from the environment, or say in one sentence what is wrong."""
    try:
        return settings_class()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            variable = ENV_PREFIX + ".".join(str(part) for part in error["loc"]).upper()
            if error["type"] == "missing":
                problems.append(f"{variable} is required but not set")
            else:
                problems.append(f"{variable} is invalid ({error['msg']})")
        raise ConfigurationError("; ".join(problems)) from None


def describe_endpoint(url: str) -> str:
    """``host:port`` of a connection URL, without user, password or database: safe to log.

    Several URLs separated by commas (a cluster) give their endpoints separated by commas.
    """
    if "," in url:
        return ",".join(describe_endpoint(part.strip()) for part in url.split(",") if part.strip())
    parts = urlsplit(url)
    if parts.hostname is None:
        return parts.scheme or "unknown endpoint"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
