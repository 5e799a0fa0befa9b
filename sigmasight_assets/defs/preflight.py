"""Every setting read and validated once, before anything runs (DESIGN §2, §7).

:func:`check_settings` is called when the definitions load (``definitions.py``, before any asset
module is imported) and when a ``sigmasight`` command starts (``cli/__init__.py``): a wrong setting
stops everything with one line naming the setting, the value and what is expected — no traceback,
nothing written. The steps read the same settings again later through the same functions, so they
cannot disagree with this check.

Checked, in order: no retired setting is set (``SIGMASIGHT_WORKERS``, ``SIGMASIGHT_CHUNK_PORTFOLIO_DAYS``:
set, they would be silently ignored), ``SIGMASIGHT_START_DATE``, ``SIGMASIGHT_SYNTHETIC_SEED``,
``SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK``, ``SIGMASIGHT_MARKET_DATA`` (the provider chain is built: an
unknown provider, a missing CSV directory or real and synthetic mixed without the opt-in fail here),
``SIGMASIGHT_SCENARIOS_FILE`` (the file is loaded and every scenario validated),
``SIGMASIGHT_BATCH_PORTFOLIO_DAYS``, ``SIGMASIGHT_PARTITIONS_PER_RUN``, ``SIGMASIGHT_NUMERIC_THREADS``,
``SIGMASIGHT_MAX_RUNTIME_MINUTES``, ``SIGMASIGHT_FRESHNESS_GRACE_MINUTES``,
``SIGMASIGHT_KILL_AFTER_MINUTES`` and, when set, ``SIGMASIGHT_DATABASE_URL`` (parsed and, for a
server database, connected to: unreachable server, unknown user, missing database). The embedded
default warehouse (an SQLite file under ``$DAGSTER_HOME``) is not touched here: it is created on
first use.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

from .. import config
from ..config import ConfigError


class SettingsError(ConfigError):
    """A setting is wrong; ``str(error)`` is the one line to show the user."""


# Settings of earlier versions that no longer do anything: set, they would be silently ignored.
RETIRED = {
    "SIGMASIGHT_WORKERS": "no process pool any more: parallelism is Dagster's (max_concurrent_runs in dagster.yaml, "
                          "SIGMASIGHT_PARTITIONS_PER_RUN)",
    "SIGMASIGHT_CHUNK_PORTFOLIO_DAYS": "replaced by SIGMASIGHT_BATCH_PORTFOLIO_DAYS",
}


def _retired() -> None:
    for name, instead in RETIRED.items():
        raw = os.environ.get(name, "").strip()
        if raw:
            raise ConfigError(f"{name}={raw!r} is no longer a setting ({instead}); unset it")


def _market_data() -> None:
    from ..market_data.chain import build_provider

    build_provider(config.market_data_spec(), config.synthetic_seed())


def _scenarios() -> None:
    from ..scenarios import ScenarioConfigError, load_scenarios

    path = config.scenarios_file()
    try:
        load_scenarios(path)
    except ScenarioConfigError as exc:
        name = "SIGMASIGHT_SCENARIOS_FILE" if path else "the embedded scenario file"
        raise ConfigError(f"{name}: {exc}") from None


def _minutes() -> None:
    from .common import kill_after_tags
    from .failures import max_runtime_minutes
    from .freshness import grace_minutes

    max_runtime_minutes()
    grace_minutes()
    kill_after_tags()


def check_database_url() -> None:
    """``SIGMASIGHT_DATABASE_URL``, when set: parsed and, for a server database, connected to
    (:func:`..warehouse.engine.check_url`); a problem raises :class:`ConfigError` (one line)."""
    from ..warehouse.engine import WarehouseURLError, check_url

    url = os.environ.get("SIGMASIGHT_DATABASE_URL", "").strip()
    if not url:
        return
    try:
        check_url(url, "SIGMASIGHT_DATABASE_URL")
    except WarehouseURLError as exc:
        raise ConfigError(str(exc)) from None


def checks(database: bool = True) -> Iterator[Callable[[], object]]:
    """The validations, cheapest first."""
    yield _retired
    yield config.start_date
    yield config.synthetic_seed
    yield config.allow_synthetic_fallback
    yield _market_data
    yield _scenarios
    yield lambda: config.batch_portfolio_days(1)
    yield lambda: config.partitions_per_run(1)
    yield config.numeric_threads
    yield _minutes
    if database:
        yield check_database_url


def check_settings(database: bool = True) -> None:
    """Validate every setting; raise :class:`SettingsError` (one line) for the first wrong one.

    ``database=False`` skips ``SIGMASIGHT_DATABASE_URL`` (a command that takes ``--database-url``
    checks the URL it will use itself, see ``cli.common.open_warehouse``).
    """
    for check in checks(database):
        try:
            check()
        except SettingsError:
            raise
        except ConfigError as exc:
            raise SettingsError(one_line(exc)) from None


def limit_numeric_threads() -> int:
    """Cap the threads of every numerical library loaded in this process (and of those loaded
    later, through their environment variables) at ``SIGMASIGHT_NUMERIC_THREADS`` (see
    :func:`config.numeric_threads`); returns the cap. Called where the code location loads, so the
    code server, every run worker and every step process of a run get it."""
    from threadpoolctl import threadpool_limits

    n = config.numeric_threads()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    threadpool_limits(limits=n)
    return n


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an error's message (a user's mistake is one line, never a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a user's mistake in a setting or the warehouse URL (shown as one
    line by the command line), as opposed to a bug (shown with its traceback)."""
    from ..scenarios import ScenarioConfigError
    from ..warehouse.engine import WarehouseURLError
    from ..warehouse.repository import WarehouseNotWritable
    from ..warehouse.versions import WarehouseSchemaError

    return (ConfigError, ScenarioConfigError, WarehouseURLError, WarehouseNotWritable, WarehouseSchemaError)
