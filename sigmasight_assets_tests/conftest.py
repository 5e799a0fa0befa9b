"""Shared fixtures: an isolated environment, a temporary warehouse, an ephemeral Dagster instance.

Every test runs with ``DAGSTER_HOME`` and ``SIGMASIGHT_DATABASE_URL`` pointing into its own
``tmp_path`` (autouse), so nothing is ever written into the repository (``config.database_url()``
would otherwise create ``.dagster_home/`` in the working directory). The ``SIGMASIGHT_*`` settings
that change results (start date, provider, seed) are removed so a developer's shell cannot leak in;
a test that needs one sets it with ``monkeypatch``.

``warehouse.engine.engine_for`` caches one engine per URL: each test gets a unique SQLite file, hence
a unique URL and a fresh engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "sigmasight_assets" / "data"
SAMPLE_POSITIONS = DATA / "sample_positions.csv"
SAMPLE_FLOWS = DATA / "sample_capital_flows.csv"


# The test files that take longest (seconds on the 2-core machine, measured with --durations), run
# first: with two xdist workers each taking whole files in collection order (pyproject addopts), a
# long file started last would leave one worker idle at the end. Files keep their tests' order.
LONGEST_FIRST = (
    "test_graphql_ui.py",  # ~400 s: four backfill routes through a real daemon
    "test_benchmarks_smoke.py",  # ~200 s: the benchmark runner, a backfill through a real daemon
    "test_dead_run.py",  # ~160 s: two daemons, run monitoring's backstop
    "test_point_in_time.py",  # ~120 s: two warehouses over 74 sessions, eight nightly runs
    "test_e2e_daemon.py",  # ~60 s: a daemon, two queued runs and an onboarding
    "test_cli_demo.py",  # ~60 s: a year of warm-up
    "test_sensors.py",  # ~70 s: a year of history for a new symbol
    "test_browser.py",
    "test_deploy.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def tmp_warehouse_url(tmp_path: Path) -> str:
    """A SQLite warehouse URL in this test's temporary directory (unique per test)."""
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path: Path, tmp_warehouse_url: str) -> Path:
    """DAGSTER_HOME and the warehouse URL in ``tmp_path``; result-changing settings unset."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", tmp_warehouse_url)
    for var in ("SIGMASIGHT_START_DATE", "SIGMASIGHT_MARKET_DATA", "SIGMASIGHT_SYNTHETIC_SEED"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def warehouse(tmp_warehouse_url: str):
    """The temporary warehouse with every table created."""
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(tmp_warehouse_url)
    wh.create_all()
    yield wh
    wh.engine.dispose()


@pytest.fixture
def ephemeral_instance():
    """An in-memory Dagster instance (no files, no daemon)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def loaded_sample(warehouse):
    """The four sample portfolios (positions and capital flows) loaded into the temporary warehouse."""
    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.warehouse.ledger import store_ledger

    ledger = parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS)
    store_ledger(warehouse, ledger)
    return ledger
