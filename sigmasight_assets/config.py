"""Runtime settings read from the environment, validated with clear messages.

Every setting has an embedded default so the code location runs offline with no configuration:
SQLite warehouse under ``$DAGSTER_HOME`` and the deterministic synthetic market. Settings only:
domain constants (the factor ETFs, windows) are in ``calc/factors.py``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

DEFAULT_START_DATE = date(2000, 1, 3)


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the variable and the value."""


def _parse_date(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an ISO date (YYYY-MM-DD)") from exc


def start_date() -> date:
    """First partition of ``trading_days`` (``SIGMASIGHT_START_DATE``, default 2000-01-03)."""
    raw = os.environ.get("SIGMASIGHT_START_DATE")
    return _parse_date("SIGMASIGHT_START_DATE", raw) if raw else DEFAULT_START_DATE


def dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else Path.cwd() / ".dagster_home"


def database_url() -> str:
    """Warehouse URL (``SIGMASIGHT_DATABASE_URL``); default an SQLite file under the Dagster home."""
    url = os.environ.get("SIGMASIGHT_DATABASE_URL")
    if url:
        return url
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'sigmasight_warehouse.sqlite'}"


def market_data_spec() -> str:
    """Provider chain spec (``SIGMASIGHT_MARKET_DATA``), e.g. ``synthetic`` or ``yfinance,csv:/data``."""
    return os.environ.get("SIGMASIGHT_MARKET_DATA", "synthetic").strip() or "synthetic"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(name: str, default: bool = False) -> bool:
    """A yes/no setting: ``1/true/yes/on`` or ``0/false/no/off`` (any case), ``default`` when unset or
    blank; anything else raises :class:`ConfigError` naming the variable and the value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value (expected 1 or 0, true or false)")


def allow_synthetic_fallback() -> bool:
    """``SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK``: let a ``SIGMASIGHT_MARKET_DATA`` chain mix a real provider
    with ``synthetic`` (default no: real and synthetic prices never mix in one warehouse silently)."""
    return flag("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK")


def checks_by_day() -> bool:
    """``SIGMASIGHT_CHECKS_BY_DAY`` (default yes): record each check's verdict on every day of a run over
    many days, so no day's check reads as skipped in the UI (one event per check and day)."""
    return flag("SIGMASIGHT_CHECKS_BY_DAY", default=True)


def synthetic_seed() -> int:
    raw = os.environ.get("SIGMASIGHT_SYNTHETIC_SEED", "7")
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"SIGMASIGHT_SYNTHETIC_SEED={raw!r} is not an integer") from exc


def scenarios_file() -> str | None:
    """Stress scenario file (``SIGMASIGHT_SCENARIOS_FILE``); default the legacy set shipped in the package."""
    raw = os.environ.get("SIGMASIGHT_SCENARIOS_FILE", "").strip()
    if raw and not Path(raw).is_file():
        raise ConfigError(f"SIGMASIGHT_SCENARIOS_FILE={raw!r} is not a file")
    return raw or None


def positive_number(name: str, default, cast=int, noun: str = "an integer"):
    """``cast`` of environment variable ``name`` (``default`` when unset or blank); a value that is
    not ``noun`` or is not > 0 raises :class:`ConfigError` naming the variable and the value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not {noun}") from exc
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def batch_portfolio_days(default: int) -> int:
    """Portfolio-days per batch of the portfolio analytics (``SIGMASIGHT_BATCH_PORTFOLIO_DAYS``): the
    memory knob of a portfolio step — about 1 GB of RSS for the computation at the default 20,000
    (10,000 portfolios × 25 positions × 2 sessions, or 20,000 portfolios of one session)."""
    return positive_number("SIGMASIGHT_BATCH_PORTFOLIO_DAYS", default)


def partitions_per_run(default: int) -> int:
    """Partitions per run of a backfill (``SIGMASIGHT_PARTITIONS_PER_RUN``): every partitioned asset's
    ``BackfillPolicy.multi_run`` size."""
    return positive_number("SIGMASIGHT_PARTITIONS_PER_RUN", default)


def numeric_threads() -> int:
    """Threads of the numerical libraries (OpenBLAS, OpenMP) in each process of the code location
    (``SIGMASIGHT_NUMERIC_THREADS``, default 1). Parallelism is Dagster's: a backfill runs as runs
    side by side, one per core (``max_concurrent_runs``), and a library that also starts a thread
    per core in each of them oversubscribes the machine — measured on 2 cores, two processes of
    correlation and regression products took 2× as long with 2 BLAS threads each as with 1. Raise
    it only where one run has the machine to itself."""
    return positive_number("SIGMASIGHT_NUMERIC_THREADS", 1)
