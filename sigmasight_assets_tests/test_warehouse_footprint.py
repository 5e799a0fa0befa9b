"""The warehouse's compact storage (issue 19), on SQLite and on the PostgreSQL server: scenario
attributes stored once in ``stress_scenarios`` and joined back on read, ``stress_results_view``
presenting the contract columns with contributors as objects, scoped replacement on a table
without a key index, and version 4's in-place rebuild of an older warehouse (or its refusal)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from sigmasight_assets.cli import main
from sigmasight_assets.warehouse import Warehouse
from sigmasight_assets.warehouse.schema import readable_columns
from sigmasight_assets.warehouse.schemas import write_validated
from sigmasight_assets.warehouse.versions import (CURRENT_VERSION, UPGRADE_COMMAND, WarehouseSchemaError, ensure_current,
                                                 stored_version)

from .test_postgres import pg_url  # noqa: F401  (the throwaway-database fixture)

DAYS = pd.to_datetime(["2025-03-04", "2025-03-05"])
SCENARIOS = [("market_down_5", "Market Decline 5%", "market", "base"), ("rates_up_50bp", "Rates Up 50bp", "rates", "base")]


def stress_frame(pids=("P1", "P2"), days=DAYS, name_suffix="") -> pd.DataFrame:
    rows = []
    for d in days:
        for i, pid in enumerate(pids):
            for j, (sid, name, cat, sev) in enumerate(SCENARIOS):
                pnl = -1000.0 * (i + 1) * (j + 1) - 0.25
                rows.append({"date": d, "portfolio_id": pid, "scenario_id": sid, "scenario_name": name + name_suffix,
                             "category": cat, "severity": sev, "direct_pnl": pnl, "correlated_pnl": pnl * 1.1,
                             "correlation_effect": pnl * 0.1, "direct_pct_equity": pnl / 1e6,
                             "correlated_pct_equity": pnl * 1.1 / 1e6, "positions_covered": 2,
                             "positions_missing_beta": 0,
                             "top_contributors": json.dumps([[f"{pid}-L1", "AAPL", round(pnl * 0.7, 2)],
                                                             [f"{pid}-L2", 'we"ird', round(pnl * 0.3, 2)]],
                                                            separators=(",", ":")),
                             "coverage": 1.0, "replayed_share": float("nan")})
    return pd.DataFrame(rows)


def check_compact_stress(url: str) -> None:
    wh = Warehouse(url)
    wh.create_all()
    frame = stress_frame()
    write_validated(wh, "stress_results", frame, DAYS[0], DAYS[-1])
    got = wh.read("stress_results")
    assert list(got.columns) == readable_columns("stress_results") == list(frame.columns)
    key = ["date", "portfolio_id", "scenario_id"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True), frame.sort_values(key).reset_index(drop=True),
                                  check_dtype=False)
    # Stored once per scenario, not per row; the asset table has no scenario attribute column.
    stored = {c["name"] for c in inspect(wh.engine).get_columns("stress_results")}
    assert not {"scenario_name", "category", "severity"} & stored
    assert sorted(wh.read("stress_scenarios")["scenario_id"]) == [s[0] for s in SCENARIOS]
    # Only some columns, with and without a lookup column.
    assert list(wh.read("stress_results", columns=["portfolio_id", "severity"]).columns) == ["portfolio_id", "severity"]
    assert len(wh.read("stress_results", DAYS[1], DAYS[1], keys=["P2"], columns=["direct_pnl"])) == 2

    # The view: the contract's columns in the readable order, contributors as objects.
    view = wh.query("SELECT * FROM stress_results_view WHERE portfolio_id = 'P1' AND scenario_id = 'market_down_5'")
    assert list(view.columns) == readable_columns("stress_results") and len(view) == 2
    row = view.iloc[0]
    assert (row["scenario_name"], row["category"], row["severity"]) == SCENARIOS[0][1:]
    stored = json.loads(frame.loc[0, "top_contributors"])  # P1, market_down_5, first day
    assert json.loads(row["top_contributors"]) == [{"position_id": p, "symbol": s, "pnl": v} for p, s, v in stored]

    # A scoped replacement (no key index on stress_results: deleted day by day through the primary
    # key) replaces only P2's rows; a renamed scenario is updated once for every row.
    again = stress_frame(pids=("P2",), name_suffix=" (renamed)")
    again["direct_pnl"] = 1.0
    wh.replace_partitions("stress_results", again, DAYS[0], DAYS[-1], keys=["P2"], key_column="portfolio_id")
    got = wh.read("stress_results")
    assert len(got) == 8
    assert (got.loc[got["portfolio_id"] == "P2", "direct_pnl"] == 1.0).all()
    assert (got.loc[got["portfolio_id"] == "P1", "direct_pnl"] < 0).all()
    assert got["scenario_name"].str.endswith("(renamed)").all()
    assert len(wh.read("stress_scenarios")) == 2

    # Removing a portfolio from every day (no key index: one primary key delete per stored day).
    assert wh.delete_keys(["stress_results"], ["P1"]) == {"stress_results": 4}
    assert set(wh.read("stress_results")["portfolio_id"]) == {"P2"}
    wh.engine.dispose()


def test_compact_stress_on_sqlite(tmp_path):
    check_compact_stress(f"sqlite:///{tmp_path / 'w.sqlite'}")


@pytest.mark.postgres
def test_compact_stress_on_postgres(pg_url):  # noqa: F811
    check_compact_stress(pg_url)


# The version-3 shape of two tables: rowid heaps with the (date, key) and (key, date) indexes, the
# scenario attributes on every stress row and contributors as objects.
OLD_DDL = [
    "DROP VIEW IF EXISTS stress_results_view",
    "DROP TABLE stress_results",
    "DROP TABLE stress_scenarios",
    "DROP TABLE prices",
    "CREATE TABLE stress_results (date DATE NOT NULL, portfolio_id VARCHAR(64) NOT NULL, scenario_id VARCHAR(64) "
    "NOT NULL, scenario_name VARCHAR(200) NOT NULL, category VARCHAR(32) NOT NULL, severity VARCHAR(32) NOT NULL, "
    "direct_pnl FLOAT, correlated_pnl FLOAT, correlation_effect FLOAT, direct_pct_equity FLOAT, "
    "correlated_pct_equity FLOAT, positions_covered INTEGER NOT NULL, positions_missing_beta INTEGER NOT NULL, "
    "top_contributors TEXT)",
    "CREATE UNIQUE INDEX ix_stress_results_date_key ON stress_results (date, portfolio_id, scenario_id)",
    "CREATE INDEX ix_stress_results_key_date ON stress_results (portfolio_id, date)",
    "CREATE TABLE prices (date DATE NOT NULL, symbol VARCHAR(64) NOT NULL, open FLOAT, high FLOAT, low FLOAT, "
    "close FLOAT NOT NULL, adj_close FLOAT NOT NULL, volume FLOAT, dividend FLOAT, split_ratio FLOAT, "
    "source VARCHAR(32) NOT NULL)",
    "CREATE UNIQUE INDEX ix_prices_date_key ON prices (date, symbol)",
    "CREATE INDEX ix_prices_key_date ON prices (symbol, date)",
    "INSERT INTO prices (date, symbol, close, adj_close, source) VALUES ('2025-03-05', 'AAPL', 123.456789012345, "
    "120.5, 'synthetic')",
    "DELETE FROM schema_version",
    "INSERT INTO schema_version (version, applied_at, description) VALUES (2, '2026-01-01 00:00:00', 'old')",
]


def make_version_2(url: str) -> None:
    if url.startswith("sqlite:///"):  # a file from before: 4 KB pages
        import sqlite3

        raw = sqlite3.connect(url[len("sqlite:///"):])
        raw.execute("PRAGMA page_size=4096")
        raw.execute("CREATE TABLE t (a)")
        raw.close()
    wh = Warehouse(url)
    wh.create_all()
    with wh.engine.begin() as conn:
        for sql in OLD_DDL:
            conn.exec_driver_sql(sql)
        for r in stress_frame().itertuples(index=False):
            objects = json.dumps([{"position_id": p, "symbol": s, "pnl": v} for p, s, v in json.loads(r.top_contributors)])
            conn.exec_driver_sql(
                "INSERT INTO stress_results VALUES (%s)" % ", ".join(["?" if wh.dialect == "sqlite" else "%s"] * 14),
                (r.date.date(), r.portfolio_id, r.scenario_id, r.scenario_name, r.category, r.severity, r.direct_pnl,
                 r.correlated_pnl, r.correlation_effect, r.direct_pct_equity, r.correlated_pct_equity,
                 r.positions_covered, r.positions_missing_beta, objects))
    wh.engine.dispose()


def check_rebuild(url: str) -> None:
    make_version_2(url)
    wh = Warehouse(url)
    with pytest.raises(WarehouseSchemaError) as err:  # refused until rebuilt, in one line naming the command
        ensure_current(wh.engine)
    assert "\n" not in str(err.value) and f"`{UPGRADE_COMMAND}`" in str(err.value)

    out = CliRunner().invoke(main, ["warehouse", "upgrade", "--database-url", url])
    assert out.exit_code == 0, out.output
    with wh.engine.connect() as conn:
        assert stored_version(conn) == CURRENT_VERSION
    insp = inspect(wh.engine)
    assert insp.get_pk_constraint("stress_results")["constrained_columns"] == ["date", "portfolio_id", "scenario_id"]
    assert {ix["name"] for ix in insp.get_indexes("stress_results")} == set()
    assert {ix["name"] for ix in insp.get_indexes("prices")} == {"ix_prices_key_date", "ix_prices_actions"}
    if wh.dialect == "sqlite":
        ddl = wh.query("SELECT sql FROM sqlite_master WHERE name = 'stress_results'")["sql"].iloc[0]
        assert "WITHOUT ROWID" in ddl
        with wh.engine.connect() as conn:  # rewritten at 16 KB pages, back in WAL mode
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 16384
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one().lower() == "wal"
    ensure_current(wh.engine)  # accepted now
    # The same readable frame as before the rebuild: attributes joined back, contributors as arrays.
    want = stress_frame().assign(coverage=float("nan"))  # version 4 added coverage: unknown for older rows
    got = wh.read("stress_results")
    key = ["date", "portfolio_id", "scenario_id"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="top_contributors"), want.drop(columns="top_contributors"),
                                  check_dtype=False)
    assert [json.loads(t) for t in got["top_contributors"]] == [json.loads(t) for t in want["top_contributors"]]
    assert wh.read("prices")["close"].tolist() == [123.456789012345]  # every digit kept
    view = wh.query("SELECT * FROM stress_results_view")
    assert list(view.columns) == readable_columns("stress_results") and len(view) == len(want)
    wh.engine.dispose()


def test_version_4_rebuilds_a_sqlite_warehouse_in_place(tmp_path):
    check_rebuild(f"sqlite:///{tmp_path / 'v2.sqlite'}")


@pytest.mark.postgres
def test_version_4_rebuilds_a_postgres_warehouse_in_place(pg_url):  # noqa: F811
    check_rebuild(pg_url)
