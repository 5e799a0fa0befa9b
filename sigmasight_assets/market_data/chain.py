"""A fallback chain of providers, and the ``SIGMASIGHT_MARKET_DATA`` spec parser.

Spec grammar (case-insensitive provider names, spaces around tokens ignored)::

    spec     := provider ("," provider)*
    provider := "synthetic" | "yfinance" | "csv:" DIR

e.g. ``synthetic``, ``yfinance``, ``csv:/data/prices``, ``yfinance,csv:/data``, ``yfinance,synthetic``.
``DIR`` is everything after the first ``:`` (``~`` is expanded); it cannot contain a comma.
A single provider builds that provider itself; several build a :class:`FallbackChain` in order.
"""

from __future__ import annotations

from datetime import date
from typing import Callable, Sequence

import pandas as pd

from ..config import ConfigError
from .base import (
    PRICE_COLUMNS,
    VALUATION_COLUMNS,
    FetchResult,
    MarketDataProvider,
    ProviderUnavailableError,
    empty_frame,
)

ENV_VAR = "SIGMASIGHT_MARKET_DATA"


class FallbackChain:
    """Ask each provider in turn for the symbols the previous ones could not deliver.

    Parameters
    ----------
    providers : list of MarketDataProvider
        In order of preference; at least one.

    Notes
    -----
    Granularity is the symbol: a provider that delivers at least one row for a symbol owns it for
    that request (missing dates inside its range are *not* asked of the next provider, so one
    symbol's series never mixes sources within a fetch). The ``source`` column keeps the provider
    that delivered each row. A symbol nobody delivered gets the reasons of every provider tried,
    joined as ``"yfinance: no data returned; csv: no file"``. A provider raising
    :class:`ProviderUnavailableError` is skipped (its reason is recorded for every symbol still
    pending); the chain raises only when every provider it asked was unavailable.
    """

    def __init__(self, providers: Sequence[MarketDataProvider]):
        if not providers:
            raise ValueError("FallbackChain needs at least one provider")
        self.providers = list(providers)
        self.name = ",".join(p.name for p in self.providers)
        #: provider name → reason, for providers found unavailable during the last fetch
        self.last_unavailable: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"FallbackChain({self.providers!r})"

    def _fetch(self, method: str, columns: list[str], symbols: Sequence[str], start: date,
               end: date) -> FetchResult:
        pending = list(dict.fromkeys(symbols))
        if not pending:
            return FetchResult(empty_frame(columns), {})
        reasons: dict[str, list[str]] = {s: [] for s in pending}
        frames: list[pd.DataFrame] = []
        unavailable: dict[str, str] = {}
        asked = 0
        for provider in self.providers:
            if not pending:
                break
            asked += 1
            fetch: Callable[..., FetchResult] = getattr(provider, method)
            try:
                result = fetch(pending, start, end)
            except ProviderUnavailableError as exc:
                unavailable[provider.name] = exc.reason
                for sym in pending:
                    reasons[sym].append(f"{provider.name}: unavailable ({exc.reason})")
                continue
            frame = result.frame
            frame = frame[frame["symbol"].isin(pending)] if len(frame) else frame
            if len(frame):
                frame = frame.copy()
                if "source" not in frame.columns:
                    frame["source"] = provider.name
                frame["source"] = frame["source"].fillna(provider.name)
                frames.append(frame[columns])
            delivered = set(frame["symbol"]) if len(frame) else set()
            for sym in pending:
                if sym not in delivered:
                    reasons[sym].append(f"{provider.name}: {result.failures.get(sym, 'not returned')}")
            pending = [s for s in pending if s not in delivered]
        self.last_unavailable = unavailable
        if len(unavailable) == asked:
            detail = "; ".join(f"{name}: {reason}" for name, reason in unavailable.items())
            raise ProviderUnavailableError(self.name, f"every provider is unavailable ({detail})")
        frame = (
            pd.concat(frames, ignore_index=True).sort_values(["date", "symbol"], kind="stable")
            .reset_index(drop=True) if frames else empty_frame(columns)
        )
        return FetchResult(frame, {s: "; ".join(reasons[s]) for s in pending})

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Prices from the first provider able to deliver each symbol (``PRICE_COLUMNS``)."""
        return self._fetch("fetch_prices", PRICE_COLUMNS, symbols, start, end)

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Valuations from the first provider able to deliver each symbol (``VALUATION_COLUMNS``)."""
        return self._fetch("fetch_valuations", VALUATION_COLUMNS, symbols, start, end)


def _build_one(token: str, spec: str, seed: int) -> MarketDataProvider:
    name, sep, arg = token.partition(":")
    kind = name.strip().lower()
    if kind == "synthetic" and not sep:
        from .synthetic import SyntheticProvider

        return SyntheticProvider(seed=seed)
    if kind == "yfinance" and not sep:
        from .yfinance_provider import YFinanceProvider

        return YFinanceProvider()
    if kind == "csv":
        directory = arg.strip()
        if not directory:
            raise ConfigError(f"{ENV_VAR}={spec!r}: {token!r} needs a directory, e.g. csv:/data/prices")
        from .csv_provider import CSVDirectoryProvider

        try:
            return CSVDirectoryProvider(directory)
        except OSError as exc:
            raise ConfigError(f"{ENV_VAR}={spec!r}: {token!r}: {exc}") from exc
    raise ConfigError(
        f"{ENV_VAR}={spec!r}: unknown provider {token!r} (expected synthetic, yfinance or csv:DIR, "
        f"comma-separated for a fallback chain)"
    )


def build_provider(spec: str, seed: int = 7) -> MarketDataProvider:
    """Build the provider (or fallback chain) a ``SIGMASIGHT_MARKET_DATA`` spec names.

    Parameters
    ----------
    spec : str
        See the module docstring for the grammar.
    seed : int, default 7
        Seed of the synthetic provider, when the spec uses it.

    Returns
    -------
    MarketDataProvider
        The single provider, or a :class:`FallbackChain` for a comma-separated spec.

    Raises
    ------
    ConfigError
        Naming ``SIGMASIGHT_MARKET_DATA`` and the bad token (unknown name, empty token, ``csv``
        without a directory, a directory that does not exist).
    """
    if spec is None or not str(spec).strip():
        raise ConfigError(f"{ENV_VAR} is empty (expected e.g. 'synthetic', 'yfinance' or 'csv:DIR')")
    tokens = [t.strip() for t in str(spec).split(",")]
    for t in tokens:
        if not t:
            raise ConfigError(f"{ENV_VAR}={spec!r}: empty provider name between commas")
    providers = [_build_one(t, spec, seed) for t in tokens]
    return providers[0] if len(providers) == 1 else FallbackChain(providers)
