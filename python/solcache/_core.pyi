"""Typed surface of the Rust extension ``solcache._core`` (checked by ``mypy.stubtest``)."""

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Self, TypeVar, final

from typing_extensions import disjoint_base

_T = TypeVar("_T")

__version__: str

#: The tokens the platform launches with.
MVP_TOKENS: tuple[str, ...]
#: Documented token pattern (``keys.rs``): 1 to 32 of ``A-Z a-z 0-9 . _ -``, first alphanumeric.
TOKEN_PATTERN: str
DEFAULT_TTL_MS: int
DEFAULT_DIRECT_SPIN_US: int
DEFAULT_NEAR_CACHE_MAX_BYTES: int

def validate_token(token: str) -> str:
    """Return ``token`` unchanged, or raise ``InvalidInputError``."""

def validate_address(address: str) -> str:
    """Return ``address`` unchanged if it is base58 of 32 bytes, or raise ``InvalidInputError``."""

def price_key(token: str, *, layout: str = "spread") -> str:
    """The Redis key of ``token``'s price in key layout ``layout`` (``"spread"``: ``price:SOL``,
    ``"tagged"``: ``price:{prices}:SOL``); ``InvalidInputError`` for a bad token or layout."""

def redact_url(url: str) -> str:
    """Return `url` with any password replaced by ``***``."""

def pool_key(address: str, *, layout: str = "spread") -> str:
    """The Redis key of ``address``'s pool state in key layout ``layout`` (``"spread"``:
    ``pool:<address>``, ``"tagged"``: ``pool:{pools}:<address>``)."""

@final
class PriceData:
    """One token's price: an exact decimal, its confidence interval when the source gives one,
    an aware UTC timestamp and the source's name.

    Numbers may be ``Decimal``, ``int``, ``str`` or a finite ``float`` (read by its shortest
    repr, ``0.1`` is exactly 0.1); ``bool``, NaN and infinities raise ``InvalidInputError``.
    """

    def __new__(
        cls,
        token: str,
        price: Decimal | int | float | str,
        timestamp: datetime | None = None,
        source: str = "unknown",
        *,
        confidence: Decimal | int | float | str | None = None,
    ) -> PriceData: ...
    @property
    def token(self) -> str: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def confidence(self) -> Decimal | None:
        """Half-width of the confidence interval around ``price`` (USD), or None."""
    @property
    def timestamp(self) -> datetime: ...
    @property
    def source(self) -> str: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(data: str | bytes) -> PriceData: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SwapQuote:
    """Result of :meth:`PoolState.quote_swap`; amounts in token units, fractions in 0..1."""

    @property
    def amount_in(self) -> Decimal: ...
    @property
    def amount_in_after_fee(self) -> Decimal: ...
    @property
    def amount_out(self) -> Decimal: ...
    @property
    def min_amount_out(self) -> Decimal: ...
    @property
    def spot_price(self) -> Decimal: ...
    @property
    def execution_price(self) -> Decimal: ...
    @property
    def price_impact(self) -> Decimal: ...
    @property
    def max_sandwich_loss(self) -> Decimal: ...

@final
class PoolState:
    """A constant-product pool's reserves and volume at one instant."""

    def __new__(
        cls,
        pool_address: str,
        liquidity: Decimal | int | float | str,
        reserve_a: Decimal | int | float | str,
        reserve_b: Decimal | int | float | str,
        volume_24h: Decimal | int | float | str,
        timestamp: datetime | None = None,
    ) -> PoolState: ...
    @property
    def pool_address(self) -> str: ...
    @property
    def liquidity(self) -> Decimal: ...
    @property
    def reserve_a(self) -> Decimal: ...
    @property
    def reserve_b(self) -> Decimal: ...
    @property
    def volume_24h(self) -> Decimal: ...
    @property
    def timestamp(self) -> datetime: ...
    def quote_swap(
        self,
        amount_in: Decimal | int | float | str,
        *,
        a_to_b: bool = True,
        fee_bps: int = 25,
        slippage_bps: int = 50,
    ) -> SwapQuote: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(data: str | bytes) -> PoolState: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class OperationStats:
    """Latency of one operation since the pool opened, in microseconds."""

    @property
    def count(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def slow(self) -> int: ...
    @property
    def mean_us(self) -> float: ...
    @property
    def p50_us(self) -> float: ...
    @property
    def p99_us(self) -> float: ...
    @property
    def p999_us(self) -> float: ...
    @property
    def max_us(self) -> float: ...

@final
class PoolHealth:
    """A live probe of the server plus the pool's own counters."""

    @property
    def reachable(self) -> bool: ...
    @property
    def rtt_ms(self) -> float | None: ...
    @property
    def redis_version(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def connections(self) -> int: ...
    @property
    def idle(self) -> int: ...
    @property
    def in_use(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def topology(self) -> str:
        """``"standalone"``, ``"cluster"`` or ``"sentinel"``, from the URL."""
    @property
    def primary(self) -> str | None:
        """Sentinel: the primary (``host:port``) the latest connection reached."""
    @property
    def failovers_followed(self) -> int:
        """Sentinel: times the sentinels named another primary; cluster: fresh clients opened
        after failures (slot map read again); 0 on one server."""
    @property
    def switches_seen(self) -> int:
        """Sentinel: failovers announced on ``+switch-master`` (once each); 0 otherwise."""
    @property
    def promotions_taken(self) -> int:
        """Sentinel: connections that reached a replica being promoted before the sentinels
        named it; 0 otherwise."""
    @property
    def switch_watches_up(self) -> int:
        """Sentinel: sentinels whose announcements the pool is subscribed to right now."""
    @property
    def switch_watch_errors(self) -> int:
        """Sentinel: subscriptions to a sentinel lost or refused (each retried with backoff)."""

@final
class PoolHandle:
    """An opened core pool, handed to :class:`RedisPool` once connected."""

def open_pool(
    url: str,
    *,
    max_size: int,
    min_idle: int,
    connect_timeout_ms: int,
    response_timeout_ms: int,
    checkout_timeout_ms: int,
    health_check_interval_ms: int,
    slow_threshold_ms: float,
    direct_reads: bool = True,
    direct_spin_us: int = 100,
    near_cache: bool = False,
    near_cache_max_bytes: int = 33_554_432,
    key_layout: str = "spread",
) -> Awaitable[PoolHandle]: ...

@disjoint_base
class RedisPool:
    def __new__(cls, handle: PoolHandle) -> Self: ...
    @property
    def url(self) -> str:
        """The server URL with any password replaced by ``***``."""
    @property
    def max_size(self) -> int: ...
    @property
    def key_layout(self) -> str:
        """How the caches over this pool name their keys: ``"spread"`` or ``"tagged"``."""
    @property
    def closed(self) -> bool: ...
    @property
    def redis_version(self) -> str: ...
    @property
    def direct_reads(self) -> bool:
        """Whether cache reads use the running loop's direct connection when it is up."""
    @property
    def direct_spin_us(self) -> int:
        """How long a lone direct read polls for its reply before yielding, in µs."""
    @property
    def near_cache(self) -> bool:
        """Whether cache reads are served from a near cache."""
    def near_cache_stats(self) -> dict[str, int] | None:
        """The near cache's counters (``hits``, ``misses``, ``invalidations``, ``flushes``,
        ``fills``, ``reconnects``, ``bytes``, ``entries``, ``connected``, ``io_uring``,
        ``age_p50_us``, ``age_p99_us``, ``age_max_us``); ``None`` without one."""
    def cluster_direct_stats(self) -> dict[str, int] | None:
        """A cluster's direct-read counters (``direct``, ``fallbacks``, ``refreshes``,
        ``sockets``, ``polled``, ``poll_hits``); ``None`` unless the pool is a cluster."""
    def close(self) -> Awaitable[None]: ...
    def health(self) -> Awaitable[PoolHealth]: ...
    def info(self, section: str) -> Awaitable[dict[str, str]]:
        """``INFO <section>`` as key/value strings (``memory``, ``persistence``, …)."""
    def counts(self) -> dict[str, int]:
        """``connections``, ``idle``, ``in_use`` and ``waiting`` right now (no round trip)."""
    def metrics(self) -> dict[str, OperationStats]: ...
    def error_counts(self) -> dict[str, int]:
        """Errors returned to callers so far, by kind (``timeout``, ``connection``, …)."""

@disjoint_base
class SyncRedisPool:
    """Blocking pool (see ``solcache.sync.RedisPool``); connects in the constructor."""

    def __new__(
        cls,
        url: str,
        *,
        max_size: int,
        connect_timeout_ms: int,
        response_timeout_ms: int,
        checkout_timeout_ms: int,
        slow_threshold_ms: float,
        near_cache: bool = False,
        near_cache_max_bytes: int = 33_554_432,
        direct_reads: bool = True,
        direct_spin_us: int = 100,
        key_layout: str = "spread",
    ) -> Self: ...
    @property
    def url(self) -> str:
        """The server URL with any password replaced by ``***``."""
    @property
    def max_size(self) -> int: ...
    @property
    def key_layout(self) -> str:
        """How the caches over this pool name their keys: ``"spread"`` or ``"tagged"``."""
    @property
    def closed(self) -> bool: ...
    @property
    def direct_reads(self) -> bool: ...
    @property
    def direct_spin_us(self) -> int: ...
    @property
    def redis_version(self) -> str: ...
    @property
    def near_cache(self) -> bool:
        """Whether cache reads are served from a near cache."""
    def near_cache_stats(self) -> dict[str, int] | None:
        """The near cache's counters (``hits``, ``misses``, ``invalidations``, ``flushes``,
        ``fills``, ``reconnects``, ``bytes``, ``entries``, ``connected``, ``io_uring``,
        ``age_p50_us``, ``age_p99_us``, ``age_max_us``); ``None`` without one."""
    def close(self) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def metrics(self) -> dict[str, OperationStats]: ...
    def error_counts(self) -> dict[str, int]: ...

@final
class SyncPriceCache:
    def __new__(cls, pool: SyncRedisPool, *, ttl_ms: int = 2000) -> Self: ...
    @property
    def ttl_ms(self) -> int: ...
    def set(self, price: PriceData) -> None: ...
    def set_many(self, prices: Iterable[PriceData]) -> None: ...
    def get(self, token: str, *, max_age_ms: int | None = None) -> PriceData | None: ...
    def get_many(
        self, tokens: Sequence[str], *, max_age_ms: int | None = None
    ) -> dict[str, PriceData | None]: ...

@final
class SyncPoolStateCache:
    def __new__(cls, pool: SyncRedisPool, *, ttl_ms: int = 2000) -> Self: ...
    @property
    def ttl_ms(self) -> int: ...
    def set(self, state: PoolState) -> None: ...
    def set_many(self, states: Iterable[PoolState]) -> None: ...
    def get(self, address: str, *, max_age_ms: int | None = None) -> PoolState | None: ...
    def get_many(
        self, addresses: Sequence[str], *, max_age_ms: int | None = None
    ) -> dict[str, PoolState | None]: ...

@final
class PriceCache:
    def __new__(cls, pool: RedisPool, *, ttl_ms: int = 2000) -> Self: ...
    @property
    def ttl_ms(self) -> int: ...
    def set(self, price: PriceData) -> Awaitable[None]: ...
    def set_many(self, prices: Iterable[PriceData]) -> Awaitable[None]: ...
    def get(self, token: str, *, max_age_ms: int | None = None) -> Awaitable[PriceData | None]: ...
    def get_many(
        self, tokens: Sequence[str], *, max_age_ms: int | None = None
    ) -> Awaitable[dict[str, PriceData | None]]: ...

@final
class PoolStateCache:
    def __new__(cls, pool: RedisPool, *, ttl_ms: int = 2000) -> Self: ...
    @property
    def ttl_ms(self) -> int: ...
    def set(self, state: PoolState) -> Awaitable[None]: ...
    def set_many(self, states: Iterable[PoolState]) -> Awaitable[None]: ...
    def get(
        self, address: str, *, max_age_ms: int | None = None
    ) -> Awaitable[PoolState | None]: ...
    def get_many(
        self, addresses: Sequence[str], *, max_age_ms: int | None = None
    ) -> Awaitable[dict[str, PoolState | None]]: ...

# --- events and streams ------------------------------------------------------------------

STREAM_PRICE_UPDATES: str
STREAM_TRADE_EVENTS: str
STREAM_UI_EVENTS: str
STREAM_DEAD_LETTER: str
DEFAULT_MAXLEN: int
#: ``{type name: (event class, default stream)}`` for the four event types.
EVENT_TYPES: dict[str, tuple[type[TradingEvent], str]]

@disjoint_base
class TradingEvent:
    """Base of the four event classes; immutable, hashable, comparable."""

    @property
    def type(self) -> str:
        """The snake_case name stored in the entry's ``type`` field."""
    @property
    def default_stream(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    def to_json(self) -> str:
        """The JSON stored in the entry's ``data`` field."""
    @staticmethod
    def from_json(type: str, data: str | bytes) -> TradingEvent: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class PriceUpdate(TradingEvent):
    def __new__(
        cls, token: str, price: Decimal | int | float | str, timestamp: datetime | None = None
    ) -> PriceUpdate: ...
    @property
    def token(self) -> str: ...
    @property
    def price(self) -> Decimal: ...

@final
class TradeExecuted(TradingEvent):
    def __new__(
        cls,
        id: str,
        action: str,
        token_pair: str,
        amount: Decimal | int | float | str,
        price: Decimal | int | float | str,
        timestamp: datetime | None = None,
    ) -> TradeExecuted: ...
    @property
    def id(self) -> str: ...
    @property
    def action(self) -> str:
        """``"buy"`` or ``"sell"``."""
    @property
    def token_pair(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...

@final
class PositionUpdate(TradingEvent):
    def __new__(
        cls,
        token: str,
        amount: Decimal | int | float | str,
        pnl: Decimal | int | float | str,
        timestamp: datetime | None = None,
    ) -> PositionUpdate: ...
    @property
    def token(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def pnl(self) -> Decimal: ...

@final
class SystemStatus(TradingEvent):
    def __new__(
        cls, component: str, status: str, message: str = "", timestamp: datetime | None = None
    ) -> SystemStatus: ...
    @property
    def component(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def message(self) -> str: ...

@final
class StreamEntry:
    """One stream entry: the event, or (``event`` None) why it could not be decoded."""

    @property
    def stream(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def event(self) -> TradingEvent | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def deliveries(self) -> int: ...

@final
class GroupInfo:
    @property
    def name(self) -> str: ...
    @property
    def consumers(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def last_delivered_id(self) -> str: ...
    @property
    def lag(self) -> int | None: ...

@final
class StreamInfo:
    @property
    def stream(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def first_id(self) -> str | None: ...
    @property
    def last_id(self) -> str | None: ...
    @property
    def groups(self) -> list[GroupInfo]: ...

@final
class SubscriptionStats:
    @property
    def delivered(self) -> int: ...
    @property
    def redelivered(self) -> int: ...
    @property
    def acked(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def bad_entries(self) -> int: ...
    @property
    def outages(self) -> int:
        """Times reading stopped working (each run of failed reads counts once)."""
    @property
    def retries(self) -> int:
        """Failed reads, each followed by another attempt."""
    @property
    def group_recreations(self) -> int:
        """Groups created again after they were found gone (NOGROUP)."""

@final
class CoreSubscription:
    """The Rust consumer; ``solcache.Subscription`` wraps it as an async iterator."""

    def next_batch(
        self, acks: Sequence[StreamEntry | tuple[str, str]], read_ahead: bool = False
    ) -> Awaitable[list[StreamEntry]]:
        """Acknowledge entries (or ``(stream, id)`` pairs), then read the next batch; with
        ``read_ahead``, the read of the batch after it starts at once."""
    def take_ready(self, acks: Sequence[StreamEntry | tuple[str, str]]) -> list[StreamEntry] | None:
        """The batch read ahead if it is there already (``acks`` are then queued); None when
        it is not (``acks`` untouched)."""
    def flush_acks(self, acks: Sequence[StreamEntry | tuple[str, str]]) -> Awaitable[None]: ...
    def close(self, acks: Sequence[StreamEntry | tuple[str, str]]) -> Awaitable[None]:
        """Send the acknowledgements, then close the subscription's own connection."""
    def stats(self) -> SubscriptionStats: ...
    def state(self) -> str:
        """``"connected"``, ``"retrying"`` or ``"stopped"``."""
    def last_error(self) -> str | None:
        """Why the last read failed, while retrying."""

@final
class Backoff:
    """Delays of ``initial_s``, times ``multiplier`` per failure up to ``max_s``, each
    +-``jitter`` (a fraction); ``seed`` makes the jitter repeatable."""

    def __new__(
        cls,
        initial_s: float,
        max_s: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.1,
        seed: int | None = None,
    ) -> Self: ...
    @property
    def failures(self) -> int:
        """Consecutive failures since the last ``reset()``."""
    @property
    def initial_s(self) -> float: ...
    @property
    def max_s(self) -> float: ...
    def next_delay_s(self) -> float:
        """Count one more failure and return how long to wait (s) before the next attempt."""
    def reset(self) -> None:
        """Forget past failures (after a success)."""

@final
class CoreTail:
    """The Rust tail; ``solcache.Tail`` wraps it as an async iterator."""

    @property
    def streams(self) -> list[str]:
        """The streams tailed, in the order given."""
    @property
    def positions(self) -> list[str]:
        """The last id handed out per stream (``$`` until the first connection pinned it)."""
    @property
    def state(self) -> str:
        """``connected``, ``retrying`` (the latest read failed) or ``stopped`` (closed)."""
    @property
    def entries(self) -> int:
        """Entries returned so far."""
    @property
    def outages(self) -> int:
        """Times reading started failing (a run of failures counts once)."""
    @property
    def retries(self) -> int:
        """Failed reads that were tried again."""
    @property
    def connections_opened(self) -> int:
        """Connections opened so far (1 + the reconnects)."""
    @property
    def last_error(self) -> str | None:
        """The latest failure, until a read succeeds."""
    def open(self) -> Awaitable[None]:
        """Open the connection now and pin ``$`` ids to the streams' last entries."""
    def next_batch(self, riding: bool = False) -> Awaitable[list[StreamEntry]]:
        """The next entries in arrival order; empty when none arrived within ``block_ms``.

        With ``riding``, a retryable failure waits one backoff step and gives an empty batch.
        """
    def close(self) -> Awaitable[None]:
        """Close the connection."""

@disjoint_base
class EventStream:
    def __new__(
        cls,
        pool: RedisPool,
        *,
        maxlen: int = 10000,
        maxlen_per_stream: Mapping[str, int] | None = None,
    ) -> Self: ...
    def maxlen(self, stream: str) -> int: ...
    def publish(self, event: TradingEvent, stream: str | None = None) -> Awaitable[str]: ...
    def publish_many(
        self, events: Iterable[TradingEvent], stream: str | None = None
    ) -> Awaitable[list[str]]: ...
    def read(
        self, stream: str, last_id: str = "$", *, count: int = 100, block_ms: int = 100
    ) -> Awaitable[list[StreamEntry]]: ...
    def ensure_group(self, stream: str, group: str, start_id: str = "$") -> Awaitable[bool]: ...
    def delete_group(self, stream: str, group: str) -> Awaitable[bool]:
        """Remove the group with its consumers and pending entries; True if there was one."""
    def delete_consumer(self, stream: str, group: str, consumer: str) -> Awaitable[bool]:
        """Remove ``consumer`` from ``group`` if it holds no pending entries; True if it is gone.

        A consumer that still holds entries is kept, so they stay claimable.
        """
    def expire(self, stream: str, ttl_ms: int) -> Awaitable[bool]:
        """Let the stream expire ``ttl_ms`` from now (publishing keeps it); True if it exists."""
    def info(self, stream: str) -> Awaitable[StreamInfo]: ...
    def _tail(
        self,
        streams: Sequence[str],
        from_ids: Sequence[str],
        *,
        count: int,
        block_ms: int,
        retry_initial_ms: int,
        retry_max_ms: int,
        give_up_after_ms: int | None,
    ) -> CoreTail: ...
    def _subscription(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int,
        claim_min_idle_ms: int,
        claim_interval_ms: int,
        max_deliveries: int,
        start_id: str,
        retry_initial_ms: int,
        retry_max_ms: int,
        give_up_after_ms: int | None,
    ) -> CoreSubscription: ...

def _bridge_echo(value: _T) -> Awaitable[_T]:
    """Resolves to ``value`` after one trip through the runtime (measures the boundary)."""

def _in_flight_calls() -> int:
    """Async calls whose Rust future has not finished or been dropped yet."""
