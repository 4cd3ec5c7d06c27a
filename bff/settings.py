"""Process settings, read once at start-up from the environment into a frozen object."""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bff.readpath import breakers

DEFAULT_REQUEST_DEADLINE = 4.0
DEFAULT_RATE_LIMIT = 120
"""Requests per person per minute; 0 turns the limit off."""
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_CANCEL_POLL_INTERVAL = 5.0
DEFAULT_CANCEL_POLL_AFTER = 60.0
SANDBOX_ID_SECRET = "sandbox-only-id-secret-never-use-in-production"
DEV_ISSUER = "https://dev-issuer.timeavtaler.invalid"
DEV_KEY_NAME = "dev-issuer-key.pem"
DEV_CLIENT_KEY_NAME = "dev-helseid-client.jwk"
DEMO_PERSON = "asane"
"""The sandbox person whose token `bff serve` prints and GraphiQL fills in."""
DEFAULT_AUDIENCE = "timeavtaler-bff"


class Profile(enum.Enum):
    """`sandbox`: embedded providers, dev token issuer, GraphiQL. `production`: none of those."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting the BFF reads; see docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="BFF_", frozen=True, extra="ignore")

    profile: Profile = Profile.SANDBOX
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "BFF_REDIS_URL"))
    redis_prefix: str = "bff"
    redis_cluster: bool = False
    """REDIS_URL names a node of a Redis Cluster (the client finds the others)."""
    redis_persistence_guaranteed: bool = False
    """For a managed Redis that disables CONFIG and whose provider guarantees persistence."""
    sources: Path | None = None
    sandbox_url: str | None = None
    id_secret: str | None = None
    oidc_jwks_url: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_issuer: str | None = None
    oidc_audience: str = DEFAULT_AUDIENCE
    dev_key_file: Path = Field(default_factory=lambda: Path.home() / ".cache" / "timeavtaler-bff" / DEV_KEY_NAME)
    dev_client_key_file: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "timeavtaler-bff" / DEV_CLIENT_KEY_NAME)
    """The sandbox's HelseID client key (`${HELSEID_KEY}` when the environment does not set it)."""
    request_deadline: float = DEFAULT_REQUEST_DEADLINE
    breaker_threshold: int = breakers.DEFAULT_THRESHOLD
    breaker_cooldown: float = breakers.DEFAULT_COOLDOWN
    oidc_require_at_jwt: bool = False
    trusted_documents: Path | None = None
    trusted_documents_only: bool | None = None
    """Run only manifest documents; default: in the production profile."""
    web_client: bool | None = None
    """The citizen's page at `/`; default: on in the sandbox profile, off in production."""
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT
    max_body_bytes: int = DEFAULT_MAX_BODY
    cancel_poll_interval: float = DEFAULT_CANCEL_POLL_INTERVAL
    cancel_poll_after: float = DEFAULT_CANCEL_POLL_AFTER
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _production_needs_real_config(self) -> Settings:
        if self.profile is Profile.PRODUCTION:
            missing = [name for name, value in (
                ("BFF_SOURCES", self.sources),
                ("BFF_ID_SECRET", self.id_secret),
                ("BFF_OIDC_ISSUER", self.oidc_issuer),
                ("BFF_OIDC_JWKS_URL or BFF_OIDC_JWKS_FILE", self.oidc_jwks_url or self.oidc_jwks_file),
                ("REDIS_URL", self.redis_url),
            ) if not value]
            if missing:
                raise ValueError(f"production profile needs {', '.join(missing)}")
        return self

    @property
    def production(self) -> bool:
        return self.profile is Profile.PRODUCTION

    @property
    def serves_web_client(self) -> bool:
        """The citizen's page at `/`: BFF_WEB_CLIENT, or by default in the sandbox profile."""
        return self.web_client if self.web_client is not None else not self.production

    @property
    def uses_dev_issuer(self) -> bool:
        """The sandbox's own token issuer is used when no OIDC provider is configured."""
        return self.profile is Profile.SANDBOX and not (self.oidc_jwks_url or self.oidc_jwks_file)

    @property
    def secret_for_ids(self) -> bytes:
        return (self.id_secret or SANDBOX_ID_SECRET).encode()
