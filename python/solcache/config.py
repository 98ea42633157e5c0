"""Settings read from ``SOLCACHE_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from solcache._core import redact_url

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every tunable of solcache. Each field ``x`` is also read from ``SOLCACHE_X``.

    Defaults suit a local Redis serving sub-millisecond reads; no timeout is infinite.
    """

    model_config = SettingsConfigDict(env_prefix="SOLCACHE_", env_file=".env", extra="ignore")

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        repr=False,  # may hold a password; see `redacted_redis_url`
        description="redis://, rediss:// (TLS) or unix:// URL, ACL user and password allowed.",
    )
    pool_max_size: int = Field(default=20, ge=1, le=10_000)
    pool_min_idle: int = Field(
        default=1, ge=0, le=10_000, description="Connections kept open while idle."
    )
    connect_timeout_ms: int = Field(default=1000, ge=1, le=600_000)
    response_timeout_ms: int = Field(default=500, ge=1, le=600_000)
    checkout_timeout_ms: int = Field(default=500, ge=1, le=600_000)
    health_check_interval_ms: int = Field(default=1000, ge=10, le=3_600_000)
    slow_threshold_ms: float = Field(
        default=1.0, gt=0, description="Operations slower than this are counted and logged."
    )
    price_ttl_ms: int = Field(default=2000, ge=1, le=86_400_000)
    pool_state_ttl_ms: int = Field(default=2000, ge=1, le=86_400_000)

    @property
    def redacted_redis_url(self) -> str:
        """``redis_url`` with any password replaced by ``***``."""
        return redact_url(self.redis_url)
