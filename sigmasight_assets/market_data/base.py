"""The provider protocol and the long-frame contracts every provider returns.

Frames are *long*: one row per (date, symbol). ``date`` is a naive ``datetime64[ns]`` at midnight
holding the NYSE session; prices are in the instrument's currency (USD), ``volume`` in shares.
Missing values stay NaN: a provider never fills a gap with zero or with the previous value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, Sequence, runtime_checkable

import pandas as pd

PRICE_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume", "source"]
VALUATION_COLUMNS = [
    "date",
    "symbol",
    "pe",
    "forward_pe",
    "provider_beta",
    "week52_high",
    "week52_low",
    "market_cap",
    "dividend_yield",
    "source",
]


class ProviderUnavailableError(RuntimeError):
    """The provider as a whole cannot be reached (network down, auth, rate limit exhausted)."""

    def __init__(self, provider: str, reason: str):
        super().__init__(f"market data provider {provider!r} is unavailable: {reason}")
        self.provider = provider
        self.reason = reason


@dataclass
class FetchResult:
    """What a fetch delivered.

    ``frame`` holds the delivered rows (``PRICE_COLUMNS`` or ``VALUATION_COLUMNS``); ``failures``
    maps each requested symbol that delivered *nothing* to a human-readable reason.
    """

    frame: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def delivered(self) -> set[str]:
        return set(self.frame["symbol"].unique()) if len(self.frame) else set()


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    frame["date"] = pd.Series(dtype="datetime64[ns]")
    frame["symbol"] = pd.Series(dtype="object")
    frame["source"] = pd.Series(dtype="object")
    return frame[list(columns)]


@runtime_checkable
class MarketDataProvider(Protocol):
    """A source of daily prices and valuations.

    Both methods take a list of *public* symbols (private symbols never reach a provider) and an
    inclusive date range of sessions, and return a :class:`FetchResult`. A symbol that fails is
    recorded in ``failures``; only a provider-wide outage raises :class:`ProviderUnavailableError`.
    """

    name: str

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult: ...

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult: ...
