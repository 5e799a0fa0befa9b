"""The provider protocol and the long-frame contracts every provider returns.

Frames are *long*: one row per (date, symbol). ``date`` is a naive ``datetime64[ns]`` at midnight
holding the NYSE session; prices are in the instrument's currency (USD), ``volume`` in shares.
Missing values stay NaN: a provider never fills a gap with zero or with the previous value.

Prices and corporate actions
----------------------------
A price row is *as traded* on its day: ``open, high, low, close`` are the prices quoted that day
(never adjusted for a later split or dividend), ``volume`` the shares traded that day, and the two
action columns say what happened at that day's open:

``dividend``
    Cash paid per share that goes ex on this day (USD), 0 when none. On a split day it is per
    *post-split* share, like the close of that day.
``split_ratio``
    New shares per old share of a split effective this day (4.0 for a 4:1 split, 0.1 for a 1:10
    reverse split), 1 when none.

With these, the total return of day D over the previous session is
``split_ratio_D × (close_D + dividend_D) / close_{D−1} − 1``
(:func:`sigmasight_assets.calc.returns.total_returns`): it depends on the two rows alone, so a row
stored by a nightly fetch never changes when a later split or dividend happens.

*Actions unknown* (a provider or a user's file that only knows an adjusted close): ``dividend``
and ``split_ratio`` are both NaN and ``close`` holds that adjusted series; returns are then on the
adjusted basis (``return_basis = 'adjusted'`` downstream, ``'total'`` for rows with actions). The two
columns are either both known or both NaN. ``adj_close`` is a convenience column (the provider's
split- and dividend-adjusted close as of its own reference date); nothing computes across days from
it.

Fetch results
-------------
A fetch never fails because of one symbol's data. Its :class:`FetchResult` says, per requested
symbol, what happened: rows in ``frame``; a whole-symbol failure in ``failures`` (with a one-line
reason); a deliberate "not served" in ``skipped`` (no error: e.g. a CSV directory without the
optional valuations file); and single rows the provider dropped as bad input in ``rejected``
(``date, symbol, reason``), while the symbol's other rows are delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, Sequence, runtime_checkable

import pandas as pd

PRICE_COLUMNS = [
    "date",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "dividend",
    "split_ratio",
    "source",
]
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
#: Columns of :attr:`FetchResult.rejected` (and of the quality screens' rejected frames).
REJECTED_COLUMNS = ["date", "symbol", "reason"]


class ProviderUnavailableError(RuntimeError):
    """The provider as a whole cannot be reached (network down, auth, rate limit exhausted)."""

    def __init__(self, provider: str, reason: str):
        super().__init__(f"market data provider {provider!r} is unavailable: {reason}")
        self.provider = provider
        self.reason = reason


def empty_rejected() -> pd.DataFrame:
    """An empty ``REJECTED_COLUMNS`` frame (``date`` datetime64[ns], ``symbol``/``reason`` object)."""
    return pd.DataFrame({
        "date": pd.Series(dtype="datetime64[ns]"),
        "symbol": pd.Series(dtype="object"),
        "reason": pd.Series(dtype="object"),
    })


@dataclass
class FetchResult:
    """What a fetch delivered.

    Attributes
    ----------
    frame : DataFrame
        The delivered rows (``PRICE_COLUMNS`` or ``VALUATION_COLUMNS``).
    failures : dict
        Requested symbol that delivered *nothing* → a one-line reason (an error: a bad file, no
        data, a download failure). Counted in the failure rate.
    skipped : dict
        Requested symbol the provider does not serve by design → reason (not an error: status
        ``skipped``, not counted as a failure). A symbol is in at most one of ``failures`` and
        ``skipped``, and in neither when it delivered a row.
    rejected : DataFrame
        ``REJECTED_COLUMNS``: single rows of requested symbols the provider dropped as bad input,
        one row per dropped (date, symbol) with a one-line reason naming where it came from (file,
        row, field for a CSV file). ``date`` is NaT when the row's date itself could not be read.
        The symbol's other rows are in ``frame``.
    """

    frame: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: pd.DataFrame = field(default_factory=empty_rejected)

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
    recorded in ``failures`` (or ``skipped``), a bad row in ``rejected``; only a provider-wide
    outage raises :class:`ProviderUnavailableError`.
    """

    name: str

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult: ...

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult: ...
