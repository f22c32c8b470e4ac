"""Settings read from the environment once per service, typed, with defaults.

Every variable starts with ``PARAPHE_``. A service composes the mixins it needs; a required
setting that is missing or a value of the wrong type raises :class:`ConfigurationError`, whose
message names the variables and never their values (they may be secrets).
"""

from __future__ import annotations

from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    database_url: SecretStr
    database_pool_min_size: int = Field(default=1, ge=0)
    database_pool_max_size: int = Field(default=10, ge=1)
    database_connect_timeout: float = Field(default=5.0, gt=0)


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    redis_url: SecretStr
    redis_connect_timeout: float = Field(default=2.0, gt=0)


class NatsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    nats_url: SecretStr
    nats_connect_timeout: float = Field(default=2.0, gt=0)
    # 1 on a single server; 3 on the production cluster.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)


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
    """``host:port`` of a connection URL, without user, password or database: safe to log."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return parts.scheme or "unknown endpoint"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
