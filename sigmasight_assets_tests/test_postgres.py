"""Against the real PostgreSQL server (default ``postgresql://postgres@127.0.0.1:5432``, override with
``SIGMASIGHT_TEST_PG_URL``): every test works in its own throwaway database (random name), dropped
afterwards.

1. The warehouse on Postgres: the COPY bulk path round-trips NULLs, booleans, dates, integers,
   floats to the last bit and awkward text; rewriting a partition (whole or scoped) is idempotent.
2. A Dagster instance on Postgres built from ``deploy/dagster.postgres.yaml`` (environment variables
   only) runs a partition of the market-data assets into a Postgres warehouse: the same rows as the
   embedded SQLite default, and the run and its materialisations in Postgres run/event storage.

With ``CI=true`` an unreachable server is a failure; without CI the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DAY = "2025-03-05"


def admin_url() -> str:
    return os.environ.get("SIGMASIGHT_TEST_PG_URL", DEFAULT_ADMIN_URL)


def _psycopg_conninfo(url: str) -> dict:
    u = make_url(url)
    return {k: v for k, v in {"host": u.host, "port": u.port or 5432, "user": u.username,
                              "password": u.password, "dbname": u.database or "postgres"}.items() if v is not None}


def _server_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(**_psycopg_conninfo(admin_url()), connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        reason = f"PostgreSQL not reachable at {make_url(admin_url()).render_as_string(hide_password=True)}: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI is set: the Postgres tests must run)")
        pytest.skip(f"{reason} (set SIGMASIGHT_TEST_PG_URL or start the server; with CI=true this fails)")


@pytest.fixture
def pg_url():
    """A throwaway database (random name) on the server; yields its SQLAlchemy URL, drops it after."""
    import psycopg

    _server_or_skip()
    name = f"sigmasight_test_{uuid.uuid4().hex[:12]}"
    info = _psycopg_conninfo(admin_url())
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url()).set(database=name, drivername="postgresql+psycopg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        from sigmasight_assets.warehouse.engine import engine_for

        engine_for.cache_clear()  # dispose pooled connections to the database before dropping it
        with psycopg.connect(**info, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _warehouse(url):
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(url)
    wh.create_all()
    return wh


# -- 1. warehouse round trip ----------------------------------------------------------------------------
def universe_frame(day: str, symbols: list[str]) -> pd.DataFrame:
    n = len(symbols)
    return pd.DataFrame({
        "date": pd.to_datetime([day] * n),
        "symbol": symbols,
        "asset_class": ["OPTIONS" if s.startswith("SPY2") else "PUBLIC" for s in symbols],
        "status": ["active"] * n,
        "is_factor_etf": [s == "SPY" for s in symbols],
        "fetch": [True] * (n - 1) + [False],
        "underlying": [("SPY" if s.startswith("SPY2") else None) for s in symbols],
        "expiration": pd.to_datetime([("2025-09-19" if s.startswith("SPY2") else None) for s in symbols]),
        "position_count": np.arange(n, dtype="int64"),
    })


def test_warehouse_round_trip_and_idempotent_rewrite_on_postgres(pg_url, monkeypatch):
    from sigmasight_assets.warehouse import repository

    wh = _warehouse(pg_url)
    assert wh.dialect == "postgresql"
    copies = []
    real_copy = repository._copy_postgres
    monkeypatch.setattr(repository, "_copy_postgres", lambda conn, table, frame: (copies.append(table.name),
                                                                                   real_copy(conn, table, frame)))
    symbols = ["AAPL", "SPY", "SPY250919C00460000", "ZZZ"]
    uni = universe_frame(DAY, symbols)
    assert wh.replace_partitions("symbol_universe", uni, DAY, DAY) == 4
    back = wh.read("symbol_universe", DAY, DAY).sort_values("symbol", ignore_index=True)
    pd.testing.assert_frame_equal(back, uni.sort_values("symbol", ignore_index=True), check_dtype=False)
    assert back["is_factor_etf"].dtype == bool and back["expiration"].isna().sum() == 3
    assert back["fetch"].tolist() == [True, True, True, False]
    assert back["underlying"].isna().sum() == 3

    # Floats to the last bit, NaN ↔ NULL, and text a CSV stream must quote.
    rng = np.random.default_rng(7)
    px = pd.DataFrame({
        "date": pd.to_datetime([DAY] * 4), "symbol": symbols,
        "open": [np.nan, 1 / 3, 1e-300, 123456.789012345678],
        "high": rng.normal(size=4), "low": rng.normal(size=4),
        "close": [np.pi, np.e, 5e-324, 1e300], "adj_close": rng.normal(size=4),
        "volume": [np.nan, 0.0, 1e12, 3.0], "dividend": [np.nan, 0.0, 0.205, 1e-9],
        "split_ratio": [np.nan, 1.0, 4.0, 0.1], "source": ["synthetic", "csv", "yfinance", "a,b \"quoted\"\nline"],
    })
    wh.replace_partitions("prices", px, DAY, DAY)
    got = wh.read("prices", DAY, DAY).sort_values("symbol", ignore_index=True)
    pd.testing.assert_frame_equal(got, px.sort_values("symbol", ignore_index=True), check_exact=True)

    status = pd.DataFrame({"date": pd.Timestamp(DAY), "symbol": ["AAPL", "ZZZ"], "asset": "prices",
                           "status": "failed", "reason": ["no data; provider said: \"404\", retry later", None]})
    wh.replace_partitions("symbol_status", status, DAY, DAY, extra_filter={"asset": "prices"})
    got = wh.read("symbol_status", DAY, DAY).sort_values("symbol", ignore_index=True)
    assert got["reason"].iloc[0] == status["reason"].iloc[0] and got["reason"].iloc[1] is None
    assert copies == ["symbol_universe", "prices", "symbol_status"]

    # Idempotent: the same partition again gives the same table, not a second copy.
    wh.replace_partitions("symbol_universe", uni, DAY, DAY)
    wh.replace_partitions("symbol_universe", uni, DAY, DAY)
    assert wh.count("symbol_universe", DAY, DAY) == 4
    # A scoped rewrite replaces only its keys; other days are never touched.
    wh.replace_partitions("symbol_universe", universe_frame("2025-03-06", symbols), "2025-03-06", "2025-03-06")
    wh.replace_partitions("symbol_universe", universe_frame(DAY, ["AAPL"]).assign(position_count=99), DAY, DAY,
                          keys=["AAPL"])
    back = wh.read("symbol_universe", DAY, DAY).set_index("symbol")["position_count"]
    assert back.to_dict() == {"AAPL": 99, "SPY": 1, "SPY250919C00460000": 2, "ZZZ": 3}
    assert wh.count("symbol_universe", "2025-03-06", "2025-03-06") == 4
    # A failure after the delete rolls back: the previous rows survive.
    bad = universe_frame(DAY, ["AAPL", "AAPL"])  # violates the unique (date, symbol) index
    with pytest.raises(Exception):
        wh.replace_partitions("symbol_universe", bad, DAY, DAY)
    assert wh.count("symbol_universe", DAY, DAY) == 4


# -- 2. Dagster on Postgres ------------------------------------------------------------------------------
@pytest.fixture
def pg_instance(pg_url, tmp_path, monkeypatch):
    """$DAGSTER_HOME with deploy/dagster.postgres.yaml; only the environment points it at the database."""
    from dagster import DagsterInstance

    u = make_url(pg_url)
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", u.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(u.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", u.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", u.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", u.database)
    with DagsterInstance.get() as instance:
        yield instance


def test_dagster_on_postgres_runs_a_partition_into_a_postgres_warehouse(pg_url, pg_instance, tmp_path):
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from sigmasight_assets.local_runs import materialize_range
    from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert pg_instance.run_monitoring_enabled and not pg_instance.telemetry_enabled
    ledger = parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS)
    market = ["symbol_universe", "prices", "daily_valuations"]

    def run(url, instance):
        wh = _warehouse(url)
        store_ledger(wh, ledger)
        result = materialize_range(DAY, DAY, instance=instance, selection=market,
                                   resources={"warehouse": WarehouseResource(url=url),
                                              "market_data": MarketDataResource(spec="synthetic", seed=7)})
        assert result.success
        return wh, result

    wh, result = run(pg_url, pg_instance)
    # Run and event storage are in Postgres.
    record = pg_instance.get_run_record_by_id(result.run_id)
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS
    for name in market:
        event = pg_instance.get_latest_materialization_event(AssetKey(name))
        assert event is not None and event.dagster_event.partition == DAY
    # The warehouse on Postgres holds exactly what the embedded SQLite default computes.
    sqlite_wh, _ = run(f"sqlite:///{tmp_path / 'ref.sqlite'}", DagsterInstance.ephemeral())
    keys = {"symbol_universe": ["symbol"], "prices": ["symbol"], "daily_valuations": ["symbol"],
            "symbol_status": ["symbol", "asset"]}
    for name, key in keys.items():
        pg = wh.read(name, DAY, DAY).sort_values(key, ignore_index=True)
        ref = sqlite_wh.read(name, DAY, DAY).sort_values(key, ignore_index=True)
        assert len(pg) > 0 or name == "symbol_status"
        pd.testing.assert_frame_equal(pg, ref, check_exact=True, check_dtype=False, obj=name)
    universe = wh.read("symbol_universe", DAY, DAY)
    prices = wh.read("prices", DAY, DAY)
    assert set(prices["symbol"]) <= set(universe.loc[universe["fetch"], "symbol"])
    assert {"SPY", "TLT", "AAPL"} <= set(prices["symbol"])
    wh.engine.dispose()


def test_nightly_52_week_range_query_on_postgres(pg_url):
    from .test_market_assets import assert_week52_sql_equals_pandas

    assert_week52_sql_equals_pandas(_warehouse(pg_url), pd.Timestamp("2026-06-30"))


def test_binary_copy_keeps_a_literal_backslash_n_text_and_timestamps(pg_url):
    """The bulk path is binary COPY on psycopg 3: a text that reads ``\\N`` is stored as that text,
    not NULL (the CSV stream could not tell them apart), and timestamps arrive as timestamps."""
    import datetime as dt

    from sqlalchemy import text

    wh = _warehouse(pg_url)
    status = pd.DataFrame({"date": pd.Timestamp(DAY), "symbol": ["AAPL", "ZZZ"], "asset": "prices",
                           "status": "failed", "reason": ["\\N", None]})
    wh.replace_partitions("symbol_status", status, DAY, DAY, extra_filter={"asset": "prices"})
    with wh.engine.connect() as conn:
        rows = conn.execute(text("SELECT symbol, reason, reason IS NULL FROM symbol_status ORDER BY symbol")).fetchall()
    assert [tuple(r) for r in rows] == [("AAPL", "\\N", False), ("ZZZ", None, True)]
    books = pd.DataFrame({"portfolio_id": ["P1"], "name": ["Book"], "currency": ["USD"], "source_file": [None],
                          "loaded_at": [pd.Timestamp("2026-11-21 09:30:15.123456")]})
    with wh.engine.begin() as conn:
        wh.insert(conn, "portfolios", books)
    with wh.engine.connect() as conn:
        loaded = conn.execute(text("SELECT loaded_at, source_file FROM portfolios")).fetchall()
    assert [tuple(r) for r in loaded] == [(dt.datetime(2026, 11, 21, 9, 30, 15, 123456), None)]


def test_replace_many_is_one_transaction_on_postgres(pg_url):
    """Several tables in one transaction with the partition locks taken in table order: a failure in
    the second table keeps the first's rows; a good call stores both."""
    import psycopg
    from sqlalchemy.exc import IntegrityError

    from sigmasight_assets.warehouse import Replacement

    wh = _warehouse(pg_url)
    uni = universe_frame(DAY, ["AAPL", "MSFT", "SPY"])
    status = pd.DataFrame({"date": pd.Timestamp(DAY), "symbol": ["AAPL", "MSFT"], "asset": "prices",
                           "status": "skipped", "reason": "old"})
    assert wh.replace_many([Replacement("symbol_universe", uni, DAY, DAY),
                            Replacement("symbol_status", status, DAY, DAY)]) == [3, 2]
    bad = status.assign(reason="new")
    bad.loc[1, "status"] = None  # NOT NULL
    with pytest.raises((IntegrityError, psycopg.errors.IntegrityError)):  # COPY raises the driver's error
        wh.replace_many([Replacement("symbol_universe", uni.iloc[:1], DAY, DAY),
                         Replacement("symbol_status", bad, DAY, DAY)])
    assert wh.count("symbol_universe") == 3
    assert set(wh.read("symbol_status")["reason"]) == {"old"}


# -- the risk tables (issue 18) ---------------------------------------------------------------------------
def _risk_rows(days, pids, seed: int = 3) -> pd.DataFrame:
    """Stored ``portfolio_risk`` rows: a VaR and a normal hypothetical P&L per portfolio-day (P-UNDER's VaR
    at half the σ), every other measure NULL, counts 0."""
    from sigmasight_assets.warehouse.schema import portfolio_risk

    rng = np.random.default_rng(seed)
    frames = []
    for pid in pids:
        f = pd.DataFrame({"date": pd.DatetimeIndex(days), "portfolio_id": pid})
        for c in portfolio_risk.columns:
            if c.name in f:
                continue
            f[c.name] = 0 if not c.nullable else np.nan
        f["var_99_parametric"] = (0.5 if pid == "P-UNDER" else 1.0) * 2.326 * 10_000
        f["hypothetical_pnl"] = rng.normal(0, 10_000, len(days))
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def test_risk_tables_round_trip_and_backtest_on_postgres(pg_url, tmp_path):
    from sigmasight_assets import calendar
    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.pipelines import risk
    from sigmasight_assets.pipelines.windows import WindowReader
    from sigmasight_assets.warehouse import Replacement
    from sigmasight_assets.warehouse.ledger import store_ledger
    from sigmasight_assets.warehouse.schemas import write_validated_many

    from .helpers_graph import write_ledger_files

    pos = [dict(portfolio_id=p, portfolio_name=p, position_id=f"{p}-1", symbol="AAPL", quantity=1, entry_price=1,
                entry_date="2025-01-06", investment_class="PUBLIC") for p in ("P-OK", "P-UNDER")]
    ledger = parse_ledger(*write_ledger_files(tmp_path / "ledger", pos))
    days = calendar.sessions_back("2026-03-18", 262)
    rows = _risk_rows(days, ["P-OK", "P-UNDER"])
    contrib = pd.DataFrame({
        "date": pd.Timestamp(days[-1]), "portfolio_id": "P-OK",
        "component_type": ["factor", "specific", "position"], "component": ["market", "specific", "top_positions"],
        "contribution": [60.0, 40.0, 100.0], "share": [0.6, 0.4, 1.0],
        "positions": [None, None, '[["P-OK-1","AAPL",100.0,1.0]]'],
    })
    out = {}
    for name, url in (("pg", pg_url), ("sqlite", f"sqlite:///{tmp_path / 'ref.sqlite'}")):
        wh = _warehouse(url)
        store_ledger(wh, ledger)
        for _ in range(2):  # a rewrite replaces, never duplicates
            write_validated_many(wh, [Replacement("portfolio_risk", rows, days[0], days[-1]),
                                      Replacement("risk_contributions", contrib, days[-1], days[-1])])
        _, totals = risk.run(wh, WindowReader(wh), days[-3:], {"var_backtest"})
        assert totals.rows["var_backtest"] == 6
        out[name] = {t: wh.read(t).sort_values(["date", "portfolio_id"], ignore_index=True)
                     for t in ("portfolio_risk", "risk_contributions", "var_backtest")}
        wh.engine.dispose()
    for t in out["pg"]:
        pd.testing.assert_frame_equal(out["pg"][t], out["sqlite"][t], check_dtype=False, obj=t)
    assert len(out["pg"]["portfolio_risk"]) == len(rows) and len(out["pg"]["risk_contributions"]) == 3
    bt = out["pg"]["var_backtest"].set_index(["date", "portfolio_id"])
    last = pd.Timestamp(days[-1])
    assert bt.loc[(last, "P-UNDER"), "traffic_light"] == "red" and bt.loc[(last, "P-OK"), "observations"] == 250
