"""The warehouse schema version (``warehouse/versions.py``): a new warehouse is stamped, an older or
unversioned one is refused with one line naming the upgrade command (and never read with the
wrong column names), ``sigmasight warehouse upgrade`` renames the columns in place keeping every
row, a newer one is refused. On SQLite and on the PostgreSQL server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from sigmasight_assets.cli import main
from sigmasight_assets.warehouse import Warehouse
from sigmasight_assets.warehouse.schema import metadata
from sigmasight_assets.warehouse.versions import (
    CURRENT_VERSION,
    AddColumn,
    STEPS,
    UPGRADE_COMMAND,
    RenameColumn,
    WarehouseSchemaError,
    ensure_current,
    stored_version,
)

from .test_postgres import pg_url  # noqa: F401  (the throwaway-database fixture)

DAY = "2025-03-05"


def make_version_1(url: str) -> None:
    """The schema before versioning: today's tables with the old column names, no schema_version."""
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_prices_actions")  # version 3's index on the action columns
        for step in reversed(STEPS):
            for op in step.operations:
                if isinstance(op, RenameColumn):
                    conn.exec_driver_sql(f'ALTER TABLE {op.table} RENAME COLUMN "{op.new}" TO "{op.old}"')
                elif isinstance(op, AddColumn):
                    conn.exec_driver_sql(f'ALTER TABLE {op.table} DROP COLUMN "{op.column}"')
        conn.exec_driver_sql("DROP TABLE schema_version")
        conn.exec_driver_sql(
            "INSERT INTO ridge_factors (date, symbol, factor, beta, raw_beta, capped, alpha, r_squared, observations) "
            f"VALUES ('{DAY}', 'AAPL', 'value', 0.5, 0.5, false, 1.0, 0.3, 90)")
        conn.exec_driver_sql(
            "INSERT INTO symbol_betas (date, symbol, factor, beta, raw_beta, capped, alpha, r_squared, observations) "
            f"VALUES ('{DAY}', 'AAPL', 'market', 1.1, 1.1, false, 0.0002, 0.4, 90)")
    engine.dispose()


def columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def check_versions(url: str) -> None:
    make_version_1(url)
    wh = Warehouse(url)
    with wh.engine.connect() as conn:
        assert stored_version(conn) == 1
    with pytest.raises(WarehouseSchemaError) as err:
        wh.create_all()
    message = str(err.value)
    assert "\n" not in message and f"`{UPGRADE_COMMAND}`" in message
    assert f"schema version 1, this code needs {CURRENT_VERSION}" in message
    assert "schema_version" not in inspect(wh.engine).get_table_names()  # refused before writing anything
    runner = CliRunner()
    out = runner.invoke(main, ["list", "--database-url", url])
    assert out.exit_code == 1 and UPGRADE_COMMAND in out.output and "Traceback" not in out.output

    out = runner.invoke(main, ["warehouse", "upgrade", "--database-url", url])
    assert out.exit_code == 0, out.output
    assert "ridge_factors.alpha → ridge_penalty" in out.output and f"schema version {CURRENT_VERSION}" in out.output
    assert {"ridge_penalty"} <= columns(url, "ridge_factors") and "alpha" not in columns(url, "ridge_factors")
    assert "intercept" in columns(url, "symbol_betas") and "effective_positions_corr" in columns(url, "correlations")
    assert {"coverage", "replayed_share"} <= columns(url, "stress_results")
    wh.create_all()  # accepted now
    ridge = wh.read("ridge_factors")
    assert ridge["ridge_penalty"].tolist() == [1.0] and ridge["beta"].tolist() == [0.5]  # rows kept
    assert wh.read("symbol_betas")["intercept"].tolist() == [0.0002]
    out = runner.invoke(main, ["warehouse", "upgrade", "--database-url", url])
    assert out.exit_code == 0 and "nothing to do" in out.output
    out = runner.invoke(main, ["warehouse", "version", "--database-url", url])
    assert f"warehouse schema version: {CURRENT_VERSION}" in out.output

    # A warehouse from newer code is refused too.
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO schema_version (version, applied_at, description) "
                             f"VALUES ({CURRENT_VERSION + 1}, '2030-01-01 00:00:00', 'future')")
    with pytest.raises(WarehouseSchemaError, match="newer than this code"):
        ensure_current(wh.engine)
    wh.engine.dispose()


def test_a_new_warehouse_is_stamped_with_the_current_version(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'new.sqlite'}")
    wh.create_all()
    with wh.engine.connect() as conn:
        assert stored_version(conn) == CURRENT_VERSION
    assert len(wh.read("schema_version")) == 1


def test_versions_on_sqlite(tmp_path):
    check_versions(f"sqlite:///{tmp_path / 'v1.sqlite'}")


@pytest.mark.postgres
def test_versions_on_postgres(pg_url):  # noqa: F811
    check_versions(pg_url)


def test_an_empty_database_reports_no_version(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    out = CliRunner().invoke(main, ["warehouse", "version", "--database-url", url])
    assert "none (empty database)" in out.output


# -- version 3: prices as traded with corporate actions (issue 14) ---------------------------------------
def make_version_2(url: str, *, with_actions: bool) -> None:
    """A version-2 warehouse with one day of prices, a beta and a portfolio. ``with_actions=False``: the
    schema before corporate actions (prices without dividend/split_ratio, no symbol_returns, no
    private_marks, no snapshot dividends); ``True``: one created after the columns were added but
    before the version step (its prices are already as traded)."""
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM schema_version")
        conn.exec_driver_sql("INSERT INTO schema_version (version, applied_at, description) "
                             "VALUES (2, '2026-01-01 00:00:00', 'v2')")
        conn.exec_driver_sql("DROP TABLE symbol_returns")
        conn.exec_driver_sql("DROP TABLE private_marks")
        if not with_actions:
            conn.exec_driver_sql("DROP INDEX ix_prices_actions")
            conn.exec_driver_sql("ALTER TABLE prices DROP COLUMN dividend")
            conn.exec_driver_sql("ALTER TABLE prices DROP COLUMN split_ratio")
            conn.exec_driver_sql("ALTER TABLE portfolio_snapshots DROP COLUMN dividends")
        for day, close in (("2025-03-04", 100.0), (DAY, 25.5)):
            extra = (", 0, " + ("4" if day == DAY else "1")) if with_actions else ""
            cols = ", dividend, split_ratio" if with_actions else ""
            conn.exec_driver_sql(f"INSERT INTO prices (date, symbol, close, adj_close, source{cols}) "
                                 f"VALUES ('{day}', 'AAPL', {close}, {close}, 'yfinance'{extra})")
        conn.exec_driver_sql(
            "INSERT INTO symbol_betas (date, symbol, factor, beta, raw_beta, capped, intercept, r_squared, observations) "
            f"VALUES ('{DAY}', 'AAPL', 'market', 1.1, 1.1, false, 0.0002, 0.4, 90)")
        conn.exec_driver_sql("INSERT INTO portfolios (portfolio_id, name, currency, loaded_at) "
                             "VALUES ('P1', 'one', 'USD', '2026-01-01 00:00:00')")
    engine.dispose()


def check_version_3(url: str, url_kept: str) -> None:
    from sigmasight_assets.warehouse.versions import REBUILD_OPTION

    make_version_2(url, with_actions=False)
    wh = Warehouse(url)
    with pytest.raises(WarehouseSchemaError, match=f"schema version 2, this code needs {CURRENT_VERSION}"):
        wh.create_all()
    runner = CliRunner()
    out = runner.invoke(main, ["warehouse", "upgrade", "--database-url", url])
    # Prices of unknown adjustment are never reinterpreted: refused, one line naming the rebuild command.
    assert out.exit_code == 1, out.output
    line = [ln for ln in out.output.splitlines() if "Error" in ln]
    assert len(line) == 1 and f"{UPGRADE_COMMAND} {REBUILD_OPTION}" in line[0] and "2 prices rows" in line[0]
    assert "dividend" not in columns(url, "prices")  # the refusal changed nothing
    with wh.engine.connect() as conn:
        assert stored_version(conn) == 2
    out = runner.invoke(main, ["warehouse", "upgrade", "--database-url", url, REBUILD_OPTION])
    assert out.exit_code == 0, out.output
    assert {"dividend", "split_ratio"} <= columns(url, "prices") and "dividends" in columns(url, "portfolio_snapshots")
    wh.create_all()
    assert wh.read("prices").empty and wh.read("symbol_betas").empty  # computed from prices: rebuilt by a backfill
    assert wh.read("portfolios", key_column="portfolio_id")["portfolio_id"].tolist() == ["P1"]  # the ledger is kept
    assert wh.read("symbol_returns").empty and wh.read("private_marks", key_column="portfolio_id").empty
    wh.engine.dispose()

    # A version-2 warehouse whose prices already carry actions is upgraded keeping them, and its
    # symbol_returns are computed from them.
    make_version_2(url_kept, with_actions=True)
    out = runner.invoke(main, ["warehouse", "upgrade", "--database-url", url_kept])
    assert out.exit_code == 0, out.output
    kept = Warehouse(url_kept)
    kept.create_all()
    assert len(kept.read("prices")) == 2 and len(kept.read("symbol_betas")) == 1
    r = kept.read("symbol_returns").set_index("date")["total_return"]
    assert r.iloc[-1] == pytest.approx(4 * 25.5 / 100.0 - 1) and r.isna().iloc[0]
    kept.engine.dispose()


def test_version_3_on_sqlite(tmp_path):
    check_version_3(f"sqlite:///{tmp_path / 'v2.sqlite'}", f"sqlite:///{tmp_path / 'v2kept.sqlite'}")


@pytest.mark.postgres
def test_version_3_on_postgres(pg_url, tmp_path):  # noqa: F811
    # The second warehouse on SQLite: the refusal and the rebuild are the PostgreSQL part.
    check_version_3(pg_url, f"sqlite:///{tmp_path / 'v2kept.sqlite'}")
