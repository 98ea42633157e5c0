"""Token and address validation, key names; invalid input never reaches Redis."""

from __future__ import annotations

import re

import pytest

import solcache
from solcache import InvalidInputError, PoolState, PriceData

RAYDIUM_POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
MINTS = [
    "So11111111111111111111111111111111111111112",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263",
    "J1toso1uCk3RLmjorhTtrVwY9HJ7X8V9yYac6Y7kGCPn",
    "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R",
]
VALID_TOKENS = ["SOL", "JitoSOL", "wBTC", "A", "9", "A" * 32, "mSOL-v2", "x.y_z"]
INVALID_TOKENS = [
    "",
    " SOL",
    "SOL ",
    "SO L",
    "SOL\n",
    "\x00",
    "A" * 33,
    "price:SOL",
    "{SOL}",
    "*",
    "-SOL",
    "SÖL",
    "SOL\u200b",
]
VALID_ADDRESSES = [RAYDIUM_POOL, *MINTS, "1" * 32]
INVALID_ADDRESSES = [
    "",
    "0" + RAYDIUM_POOL[1:],  # 0, O, I and l are not base58
    "O" + RAYDIUM_POOL[1:],
    "I" + RAYDIUM_POOL[1:],
    RAYDIUM_POOL[:-1] + "l",
    RAYDIUM_POOL[:20],  # too short
    RAYDIUM_POOL + "z",  # too long
    "2" * 32,  # base58, but 23 bytes
    "z" * 44,  # base58, but 33 bytes
    "1" * 33,  # base58, but 33 bytes
    " " + RAYDIUM_POOL[1:],
    "pool:" + RAYDIUM_POOL,
]


def test_mvp_tokens() -> None:
    assert solcache.MVP_TOKENS == ("SOL", "USDC", "BONK", "JitoSOL", "RAY")
    for token in solcache.MVP_TOKENS:
        assert solcache.validate_token(token) == token


@pytest.mark.parametrize("token", VALID_TOKENS)
def test_valid_tokens(token: str) -> None:
    assert solcache.validate_token(token) == token
    assert solcache.price_key(token) == f"price:{token}"
    assert re.fullmatch(solcache.TOKEN_PATTERN, token)
    assert PriceData(token, 1).token == token


@pytest.mark.parametrize("token", INVALID_TOKENS)
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        solcache.validate_token(token)
    assert isinstance(e.value, ValueError)
    with pytest.raises(InvalidInputError):
        solcache.price_key(token)
    assert not re.fullmatch(solcache.TOKEN_PATTERN, token)


@pytest.mark.parametrize("address", VALID_ADDRESSES)
def test_valid_addresses(address: str) -> None:
    assert solcache.validate_address(address) == address
    assert solcache.pool_key(address) == f"pool:{address}"


@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_invalid_addresses(address: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        solcache.validate_address(address)
    assert isinstance(e.value, ValueError)
    with pytest.raises(InvalidInputError):
        solcache.pool_key(address)


def test_key_names() -> None:
    assert solcache.price_key("SOL") == "price:SOL"
    assert solcache.pool_key(RAYDIUM_POOL) == "pool:" + RAYDIUM_POOL


async def test_invalid_input_never_touches_redis(fresh_redis) -> None:
    async with await solcache.RedisPool.connect(fresh_redis.url) as pool:
        prices, pools = solcache.PriceCache(pool), solcache.PoolStateCache(pool)
        fresh_redis.stop()  # any Redis access would now be a ConnectionError
        for token in ["", "SO L", "price:SOL", "A" * 33]:
            with pytest.raises(InvalidInputError):
                await prices.get(token)
            with pytest.raises(InvalidInputError):
                await prices.get_many(["SOL", token])
            with pytest.raises(InvalidInputError):
                await prices.set(PriceData(token, 1))
        for address in ["O" + RAYDIUM_POOL[1:], "2" * 32, "short"]:
            with pytest.raises(InvalidInputError):
                await pools.get(address)
            with pytest.raises(InvalidInputError):
                await pools.get_many([RAYDIUM_POOL, address])
            with pytest.raises(InvalidInputError):
                await pools.set(PoolState(address, 1, 1, 1, 1))
