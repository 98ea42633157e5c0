"""Decimals written as text by the Python layer (status messages) use positional notation, as
the core's JSON does: never ``1E-7``, which non-Python consumers misread."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from solcache.services.trade_simulator import TradeSimulator
from solcache.sources.simulated_trades import DeskPosition


class _Desk:
    trades = 2

    def positions(self) -> dict[str, DeskPosition]:
        return {
            "BONK": DeskPosition(Decimal("1.5E+6"), Decimal("-1E-7")),
            "SOL": DeskPosition(Decimal("-0.25"), Decimal("12.5")),
        }


def test_the_desk_status_message_writes_positional_decimals() -> None:
    desk: Any = _Desk()
    summary = TradeSimulator(desk, events=None)._summary()  # type: ignore[arg-type]
    assert summary == (
        "2 trades; positions: BONK 1500000 (PnL -0.0000001 USD), SOL -0.25 (PnL 12.5 USD)"
    )
    assert "E" not in summary
