"""A fallback chain of providers, and the ``SIGMASIGHT_MARKET_DATA`` spec parser.

Spec grammar (case-insensitive provider names, spaces around tokens ignored)::

    spec     := provider ("," provider)*
    provider := "synthetic" | "yfinance" | "csv:" DIR

e.g. ``synthetic``, ``yfinance``, ``csv:/data/prices``, ``yfinance,csv:/data``.
``DIR`` is everything after the first ``:`` (``~`` is expanded); it cannot contain a comma.
A single provider builds that provider itself; several build a :class:`FallbackChain` in order.

Real and synthetic prices never mix silently: a chain naming ``synthetic`` together with a real
provider (``yfinance,synthetic``, ``csv:DIR,synthetic``, ``synthetic,yfinance``) is refused when it
is built, unless ``SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK=1`` (:data:`ALLOW_ENV_VAR`) opts in.
"""

from __future__ import annotations

from datetime import date
from typing import Callable, Sequence

import pandas as pd

from .. import config
from ..config import ConfigError
from .base import (
    PRICE_COLUMNS,
    REJECTED_COLUMNS,
    VALUATION_COLUMNS,
    FetchResult,
    MarketDataProvider,
    ProviderUnavailableError,
    empty_frame,
    empty_rejected,
)

ENV_VAR = "SIGMASIGHT_MARKET_DATA"
ALLOW_ENV_VAR = "SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK"


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

    A symbol nobody delivered is ``skipped`` (reasons joined the same way) when every provider
    asked skipped it, and a failure otherwise. ``rejected`` rows are kept for the symbols their
    provider ended up owning and for symbols nobody delivered, each reason prefixed with the
    provider's name (``"csv: SPY.csv, row 4, field 'close': ..."``); a provider's rejected rows for
    a symbol a later provider delivered are dropped with the rest of its answer for that symbol.
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
        only_skipped = {s: True for s in pending}
        frames: list[pd.DataFrame] = []
        rejected: list[tuple[int, pd.DataFrame]] = []
        owner: dict[str, int] = {}  # symbol -> position of the provider that delivered it
        unavailable: dict[str, str] = {}
        asked = 0
        for position, provider in enumerate(self.providers):
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
                    only_skipped[sym] = False
                continue
            frame = result.frame
            frame = frame[frame["symbol"].isin(pending)] if len(frame) else frame
            if len(frame):
                frame = frame.copy()
                if "source" not in frame.columns:
                    frame["source"] = provider.name
                frame["source"] = frame["source"].fillna(provider.name)
                frames.append(frame[columns])
            bad_rows = result.rejected
            if len(bad_rows):
                bad_rows = bad_rows[bad_rows["symbol"].isin(pending)]
                rejected.append((position, bad_rows.assign(reason=provider.name + ": " + bad_rows["reason"].astype(str))))
            delivered = set(frame["symbol"]) if len(frame) else set()
            for sym in pending:
                if sym in delivered:
                    owner[sym] = position
                    continue
                if sym in result.skipped:
                    reasons[sym].append(f"{provider.name}: {result.skipped[sym]}")
                else:
                    reasons[sym].append(f"{provider.name}: {result.failures.get(sym, 'not returned')}")
                    only_skipped[sym] = False
            pending = [s for s in pending if s not in delivered]
        self.last_unavailable = unavailable
        if len(unavailable) == asked:
            detail = "; ".join(f"{name}: {reason}" for name, reason in unavailable.items())
            raise ProviderUnavailableError(self.name, f"every provider is unavailable ({detail})")
        frame = (
            pd.concat(frames, ignore_index=True).sort_values(["date", "symbol"], kind="stable")
            .reset_index(drop=True) if frames else empty_frame(columns)
        )
        # A provider's rejections stand only where no later provider delivered the symbol.
        kept = []
        for position, bad_rows in rejected:
            who = bad_rows["symbol"].map(owner)
            kept.append(bad_rows[who.isna() | (who == position)])
        rejected_frame = pd.concat(kept, ignore_index=True)[REJECTED_COLUMNS] if kept else empty_rejected()
        failures = {s: "; ".join(reasons[s]) for s in pending if not only_skipped[s]}
        skipped = {s: "; ".join(reasons[s]) for s in pending if only_skipped[s]}
        return FetchResult(frame, failures, skipped, rejected_frame)

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


def build_provider(spec: str, seed: int = 7, allow_synthetic_fallback: bool | None = None) -> MarketDataProvider:
    """Build the provider (or fallback chain) a ``SIGMASIGHT_MARKET_DATA`` spec names.

    Parameters
    ----------
    spec : str
        See the module docstring for the grammar.
    seed : int, default 7
        Seed of the synthetic provider, when the spec uses it.
    allow_synthetic_fallback : bool, optional
        Allow a chain that mixes ``synthetic`` with a real provider. ``None`` (the default) reads
        ``SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK`` through :func:`sigmasight_assets.config.allow_synthetic_fallback`.

    Returns
    -------
    MarketDataProvider
        The single provider, or a :class:`FallbackChain` for a comma-separated spec.

    Raises
    ------
    ConfigError
        Naming ``SIGMASIGHT_MARKET_DATA`` and the bad token (unknown name, empty token, ``csv``
        without a directory, a directory that does not exist), or refusing a chain that would mix
        real and synthetic prices without the opt-in (one line naming both settings).
    """
    if spec is None or not str(spec).strip():
        raise ConfigError(f"{ENV_VAR} is empty (expected e.g. 'synthetic', 'yfinance' or 'csv:DIR')")
    tokens = [t.strip() for t in str(spec).split(",")]
    for t in tokens:
        if not t:
            raise ConfigError(f"{ENV_VAR}={spec!r}: empty provider name between commas")
    providers = [_build_one(t, spec, seed) for t in tokens]
    real = [p.name for p in providers if p.name != "synthetic"]
    if real and len(real) < len(providers):
        allowed = config.allow_synthetic_fallback() if allow_synthetic_fallback is None else allow_synthetic_fallback
        if not allowed:
            raise ConfigError(
                f"{ENV_VAR}={spec!r} would mix real ({', '.join(dict.fromkeys(real))}) and synthetic prices in "
                f"one warehouse; set {ALLOW_ENV_VAR}=1 to allow it"
            )
    return providers[0] if len(providers) == 1 else FallbackChain(providers)
