"""One settings object, read from CONNHUB_* environment variables (SPEC.md section 1).

Every setting is checked here, when the object is made, so a bad one stops `connhub` before it
listens: `load_settings` turns any problem into one `ConfigError` line naming the variable, and
never quotes a value (a database URL or a key is a secret).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connhub.probes.guard import DEFAULT_DENY_CIDRS, parse_cidrs, parse_dns_servers

ENV_PREFIX = "CONNHUB_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_HS256_SECRET_BYTES = 32  # RFC 7518 section 3.2: a key at least as long as the hash output


class ConfigError(ValueError):
    """A setting is wrong; the text is one line naming the variable, without its value."""


class Settings(BaseSettings):
    # populate_by_name: a setting with aliases (below) is still given by its field name in code.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    database_url: str = "sqlite:///./.connhub/connhub.db"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    encryption_keys: str | None = Field(None, repr=False)
    auth: Literal["disabled", "jwt"] = "disabled"
    jwt_secret: str | None = Field(None, repr=False)
    jwt_public_key: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str = "tenantId"
    env: Literal["development", "production"] = "development"
    probe_deny_cidrs: str = DEFAULT_DENY_CIDRS
    probe_allow_cidrs: str = ""
    probe_dns_servers: str = ""  # comma-separated IP[:port]; empty: the system resolver
    probe_timeout_s: float = Field(10.0, gt=0, le=300)
    probe_max_concurrent: int = Field(64, ge=1)
    # How long discovered tables are cached per connection. Read from CONNHUB_TABLES_CACHE_TTL_S or
    # its documented former name CONNHUB_SCHEMA_CACHE_TTL_S (the new name wins when both are set).
    tables_cache_ttl_s: float = Field(
        300.0,
        ge=0,
        validation_alias=AliasChoices(f"{ENV_PREFIX}TABLES_CACHE_TTL_S", f"{ENV_PREFIX}SCHEMA_CACHE_TTL_S"),
    )
    tests_per_minute: int = Field(10, ge=1)
    data_dir: Path = Path("./.connhub")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    store_pool_size: int = Field(20, ge=1)  # at most this many store sessions per worker
    # A whole request (head and body) must arrive within this many seconds of its first byte.
    request_timeout_s: float = Field(30.0, gt=0, le=3600)
    # Scale-out (issue 15): Redis shares the test rate limit, the probe bound and the tables cache.
    redis_url: str | None = Field(None, repr=False)  # may carry a password
    redis_prefix: str = "connhub:"  # every key Connhub writes starts with it (several deployments, one Redis)
    redis_timeout_s: float = Field(1.0, gt=0, le=30)  # one Redis call, connecting included
    # The digest of X-Idempotency request bodies: a key of its own that never rotates (base64, 32 bytes).
    idempotency_key: str | None = Field(None, repr=False)
    # Proxies whose X-Forwarded-For/-Proto are trusted (uvicorn's forwarded_allow_ips); empty: none.
    forwarded_allow_ips: str = ""
    # Scheduled health checks (issue 18). Off by default: on, the server opens connections to every
    # stored host by itself, which its operator should choose (see README, Health).
    health_interval_s: int = Field(0, ge=0, le=7 * 24 * 3600)
    health_retention_days: int = Field(30, ge=1)
    health_concurrency: int = Field(16, ge=1)  # below probe_max_concurrent: users' tests keep slots
    health_backoff_max_s: int = Field(3600, ge=1)
    health_cert_warn_days: int = Field(14, ge=0)
    webhook_url: str | None = None
    webhook_secret: str | None = Field(None, repr=False)
    webhook_max_attempts: int = Field(8, ge=1, le=50)

    @model_validator(mode="after")
    def _webhook_signed(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("CONNHUB_WEBHOOK_SECRET is required with CONNHUB_WEBHOOK_URL (bodies are signed)")
        if self.webhook_url and not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("CONNHUB_WEBHOOK_URL must be an http:// or https:// URL")
        return self

    @field_validator("database_url")
    @classmethod
    def _known_store(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).get_backend_name()
        except (ArgumentError, ValueError):
            raise ValueError("is not a URL (expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB)") from None
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"names a {backend} store: it must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _key_ring(cls, value: str | None) -> str | None:
        from connhub.secrets import KeyRing

        if value is not None:
            KeyRing.parse(value)  # its errors name key ids, never key material
        return value

    @field_validator("probe_deny_cidrs", "probe_allow_cidrs")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_cidrs(value)
        return value

    @field_validator("probe_dns_servers")
    @classmethod
    def _dns_servers(cls, value: str) -> str:
        parse_dns_servers(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
        return value.upper()

    @field_validator("jwt_public_key")
    @classmethod
    def _public_key_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            load_pem_public_key(value.read_bytes())
        except OSError as problem:
            raise ValueError(f"cannot read {value.resolve()}: {problem.strerror or problem}") from None
        except (ValueError, TypeError):
            raise ValueError(f"{value.resolve()} holds no PEM public key (RSA or EC)") from None
        return value

    @property
    def key_file(self) -> Path:
        return self.data_dir / "keys"

    @property
    def sqlite_path(self) -> Path | None:
        """The embedded store's file, absolute; None for PostgreSQL or an in-memory SQLite."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).resolve()

    @property
    def shared_store(self) -> bool:
        """Whether the store can be shared by several processes or hosts (PostgreSQL)."""
        return not self.database_url.startswith("sqlite")

    def scale_problems(self, workers: int) -> list[str]:
        """What `serve` refuses because the result would be wrong with several processes."""
        problems = []
        if workers > 1 and not self.redis_url:
            problems.append(
                f"--workers {workers} needs CONNHUB_REDIS_URL: without it each worker keeps its own test rate "
                "limit, probe bound and tables cache"
            )
        return problems

    def production_problems(self) -> list[str]:
        """What production refuses to start without, by setting name."""
        if self.env != "production":
            return []
        problems = []
        if not self.encryption_keys:
            problems.append("CONNHUB_ENCRYPTION_KEYS is not set (production never generates keys)")
        if self.auth != "jwt":
            problems.append("CONNHUB_AUTH must be jwt in production (auth is disabled)")
        elif not (self.jwt_secret or self.jwt_public_key):
            problems.append("CONNHUB_JWT_SECRET or CONNHUB_JWT_PUBLIC_KEY is not set")
        return problems

    def startup_warnings(self) -> list[str]:
        """Defaults and weak settings in force that a person should know about."""
        warnings = []
        if not self.encryption_keys:
            warnings.append(f"CONNHUB_ENCRYPTION_KEYS unset: using the development key in {self.key_file.resolve()}")
        if self.auth == "disabled":
            warnings.append("CONNHUB_AUTH=disabled: every request acts for tenant 'default'")
            if not _is_loopback(self.host):
                warnings.append(
                    f"CONNHUB_AUTH=disabled while listening on {self.host}, not a loopback address: "
                    "anyone who can reach it can read and change every connection"
                )
        hs256 = self.auth == "jwt" and self.jwt_secret and not self.jwt_public_key
        if hs256 and len((self.jwt_secret or "").encode()) < MIN_HS256_SECRET_BYTES:
            warnings.append(
                f"CONNHUB_JWT_SECRET is shorter than {MIN_HS256_SECRET_BYTES} bytes: "
                "an HS256 secret that short can be guessed offline from one token"
            )
        if self.database_url.startswith("sqlite"):
            warnings.append("embedded SQLite store: fine for one host; use PostgreSQL in production")
        elif not self.redis_url:
            warnings.append(
                "CONNHUB_REDIS_URL unset: the test rate limit, probe bound and tables cache are this process's "
                "own; run one replica on this store, or set CONNHUB_REDIS_URL"
            )
        if not self.idempotency_key:
            warnings.append(
                "CONNHUB_IDEMPOTENCY_KEY unset: X-Idempotency digests are keyed from the active encryption key "
                "(a repeat still matches while the key that made it is loaded)"
            )
        return warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment and `overrides`, or one ConfigError line naming what is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as problems:
        raise ConfigError("; ".join(_described(error) for error in problems.errors())) from None


def variable_names(field: str) -> tuple[str, ...]:
    """The environment variables a setting is read from, the first winning: CONNHUB_<FIELD>, or
    the setting's aliases (a renamed variable keeps its former name)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (ENV_PREFIX + field.upper(),)


def _described(error: Any) -> str:
    """`CONNHUB_NAME: what is wrong`, from pydantic's error, without its `input` (maybe a secret)."""
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{_variable(tuple(error.get('loc', ())))}: {message}"


def _variable(loc: tuple[Any, ...]) -> str:
    """The variable an error is about. A value read from the environment for an aliased setting
    is reported under its first alias whichever one was set: name the first the environment holds."""
    head = str(loc[0]) if loc else ""
    for field in Settings.model_fields:
        names = variable_names(field)
        if len(names) > 1 and head in names:
            present = {key.upper() for key in os.environ}
            return next((name for name in names if name in present), names[0])
    return ENV_PREFIX + "_".join(str(part) for part in loc).upper()
