"""One settings object, read from CONNHUB_* environment variables (SPEC.md section 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connhub.probes.guard import DEFAULT_DENY_CIDRS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNHUB_", extra="ignore")

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
    schema_cache_ttl_s: float = Field(300.0, ge=0)
    tests_per_minute: int = Field(10, ge=1)
    data_dir: Path = Path("./.connhub")
    log_level: str = "INFO"
    store_pool_size: int = Field(20, ge=1)  # at most this many store sessions per worker
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
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("CONNHUB_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return value

    @property
    def key_file(self) -> Path:
        return self.data_dir / "keys"

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

    def development_warnings(self) -> list[str]:
        warnings = []
        if not self.encryption_keys:
            warnings.append(f"CONNHUB_ENCRYPTION_KEYS unset: using the development key in {self.key_file}")
        if self.auth == "disabled":
            warnings.append("CONNHUB_AUTH=disabled: every request acts for tenant 'default'")
        if self.database_url.startswith("sqlite"):
            warnings.append("embedded SQLite store: fine for one host; use PostgreSQL in production")
        return warnings
