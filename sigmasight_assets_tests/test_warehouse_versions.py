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
