"""Settings read from ``SOLCACHE_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from solcache._core import DEFAULT_DIRECT_SPIN_US, DEFAULT_NEAR_CACHE_MAX_BYTES, redact_url

__all__ = ["DEFAULT_REDIS_URL", "KeyLayout", "Settings"]

#: How cache keys are named (see ``Settings.key_layout``).
KeyLayout = Literal["spread", "tagged"]

#: Where the library connects when no URL is configured.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Every tunable of solcache. Each field ``x`` is also read from ``SOLCACHE_X``.

    Defaults suit a local Redis serving sub-millisecond reads; no timeout is infinite.
    """

    model_config = SettingsConfigDict(env_prefix="SOLCACHE_", env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        repr=False,  # may hold a password; see `redacted_redis_url`
        description=(
            "redis://, rediss:// (TLS) or unix:// URL for one server; "
            "redis+cluster://host:port,host:port for a Redis Cluster; "
            "redis+sentinel://host:port,host:port/primary_name[/db] for a Sentinel-managed "
            "primary (rediss+… for TLS). ACL user and password allowed on all. Unset: "
            "the library uses redis://127.0.0.1:6379/0; `solcache serve` starts a private "
            "redis-server."
        ),
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
    direct_reads: bool = Field(
        default=True,
        description=(
            "Cache reads and lone publishes on an asyncio loop use a connection that loop"
            " reads itself; blocking reads use a socket of their own polled from the calling"
            " thread."
        ),
    )
    direct_spin_us: int = Field(
        default=DEFAULT_DIRECT_SPIN_US,
        ge=0,
        le=1000,
        description=(
            "A lone direct read polls for its reply this long (µs) before yielding to the loop"
            " (async) or sleeping (sync)."
        ),
    )
    near_cache: bool = Field(
        default=False,
        description=(
            "Pools serve cache reads from process memory, kept correct by Redis' "
            "invalidations (CLIENT TRACKING); see docs/near-cache.md."
        ),
    )
    near_cache_max_bytes: int = Field(
        default=DEFAULT_NEAR_CACHE_MAX_BYTES,
        ge=4096,
        le=1 << 40,
        description="Memory bound of each pool's near cache (keys, values, overhead), bytes.",
    )
    key_layout: KeyLayout = Field(
        default="spread",
        description=(
            "How cache keys are named. spread: price:<token>, pool:<address>, spread over "
            "Redis Cluster slots. tagged: price:{prices}:<token>, pool:{pools}:<address>, one "
            "hash tag (one slot, one primary) per family, so get_many is one MGET on one node. "
            "Every process sharing the data must use the same layout; see docs/scaling.md."
        ),
    )
    price_ttl_ms: int = Field(default=2000, ge=1, le=86_400_000)
    pool_state_ttl_ms: int = Field(default=2000, ge=1, le=86_400_000)

    # --- the service (`solcache serve`) -----------------------------------------------------
    http_host: str = Field(default="127.0.0.1", description="Gateway bind address.")
    http_port: int = Field(default=8000, ge=0, le=65535)
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A connection that has not sent a complete request head by then is closed.",
    )
    http_keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, le=3600, description="Idle keep-alive connections are closed after."
    )
    http_max_connections: int = Field(
        default=1000, ge=1, le=1_000_000, description="Connections beyond this get 503."
    )
    sse_send_buffer_bytes: int = Field(
        default=65_536,
        ge=0,
        le=64 * 1024 * 1024,
        description="SO_SNDBUF of an /events connection (0: the system's autotuning).",
    )
    sse_max_unsent_bytes: int = Field(
        default=524_288,
        ge=1,
        description="An /events client further behind than this many bytes is disconnected.",
    )
    sse_max_unsent_age_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="An /events client that has not received what was written this long ago "
        "is disconnected.",
    )
    price_source: Literal["simulated", "pyth"] = "simulated"
    simulation_seed: int | None = Field(default=None, description="Fixes the random walk.")
    pyth_base_url: str = "https://hermes.pyth.network"
    pyth_api_key: SecretStr | None = None
    pyth_mode: Literal["stream", "poll"] = "stream"
    pyth_feed_ids: dict[str, str] | None = Field(
        default=None, description="token → Pyth feed id (hex); unset: the MVP tokens' feeds."
    )
    max_confidence_fraction: float = Field(
        default=0.02,
        ge=0,
        allow_inf_nan=False,
        description=(
            "A price whose confidence interval (Pyth's conf) is wider than this fraction of the "
            "price is refused: not written, counted, reported. 0 turns the check off."
        ),
    )
    publish_hz: float = Field(default=10.0, gt=0, le=1000, description="Price events per second.")
    pool_update_hz: float = Field(default=10.0, gt=0, le=1000)
    stream_maxlen: int = Field(default=10_000, ge=1)
    health_max_missed_ticks: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description=(
            "`serve` is degraded when its price writes, pool writes or consumer reads have not "
            "succeeded for this many of their periods (1/publish_hz, 1/pool_update_hz, the "
            "consumer's 100 ms read)."
        ),
    )
    health_hold_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description=(
            "A change between healthy and degraded is reported (/healthz, /api/status, "
            "/metrics, SystemStatus) only once it has held this long (s)."
        ),
    )

    @property
    def effective_redis_url(self) -> str:
        """``redis_url``, or the library default when unset."""
        return self.redis_url if self.redis_url is not None else DEFAULT_REDIS_URL

    @property
    def redacted_redis_url(self) -> str:
        """``effective_redis_url`` with any password replaced by ``***``."""
        return redact_url(self.effective_redis_url)
