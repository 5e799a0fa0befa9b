"""Warehouse roles (``sigmasight warehouse grant``) against the real PostgreSQL server.

Every test works in a throwaway database (``pg_url`` of ``test_postgres``) with two roles of random
names, dropped afterwards. The reader is checked with its sessions forced read-write first, so that
every refusal below comes from missing privileges, not only from ``default_transaction_read_only``.
The pure statement builders are checked without a server at the end.
"""

from __future__ import annotations

import os
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from sigmasight_assets.warehouse.roles import LEDGER_TABLES, RolePlan, RolesError, table_statements, view_statements
from sigmasight_assets.warehouse.schema import metadata

from .test_postgres import DAY, _psycopg_conninfo, admin_url, pg_url, universe_frame  # noqa: F401 (fixture)

ASSET_TABLES = [t.name for t in metadata.sorted_tables if t.name not in LEDGER_TABLES]
LEDGER_PRESENT = [t.name for t in metadata.sorted_tables if t.name in LEDGER_TABLES]


@pytest.fixture
def roles(pg_url, monkeypatch):  # noqa: F811 (the fixture imported above)
    """(writer, reader) names with passwords in the environment; both roles dropped afterwards."""
    import psycopg

    tag = uuid.uuid4().hex[:10]
    writer, reader = f"ss_writer_{tag}", f"ss_reader_{tag}"
    monkeypatch.setenv("SIGMASIGHT_WRITER_PASSWORD", f"w-{tag}")
    monkeypatch.setenv("SIGMASIGHT_READER_PASSWORD", f"r-{tag}")
    monkeypatch.setenv("SIGMASIGHT_ADMIN_DATABASE_URL", pg_url)
    yield writer, reader
    from sigmasight_assets.warehouse.engine import engine_for

    engine_for.cache_clear()
    info = _psycopg_conninfo(pg_url)
    with psycopg.connect(**info, autocommit=True) as conn:
        for role in (writer, reader):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


def grant(*extra: str):
    from sigmasight_assets.cli import main

    return CliRunner().invoke(main, ["warehouse", "grant", *extra], catch_exceptions=False)


def role_url(pg_url: str, role: str) -> str:  # noqa: F811
    return make_url(pg_url).set(username=role, password=None).render_as_string(hide_password=False)


def connect(pg_url: str, role: str, read_write: bool = True):  # noqa: F811
    import psycopg

    conn = psycopg.connect(**{**_psycopg_conninfo(pg_url), "user": role}, autocommit=True)
    if read_write:
        conn.execute("SET default_transaction_read_only = off")
    return conn


def refused(conn, sql: str) -> bool:
    """True when PostgreSQL refuses ``sql`` for lack of privilege (not any other error)."""
    import psycopg

    try:
        conn.execute(sql)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_grant_creates_a_writer_that_owns_and_writes_and_a_reader_that_only_reads(pg_url, roles):  # noqa: F811
    import psycopg

    writer, reader = roles
    result = grant("--writer", writer, "--reader", reader)
    assert result.exit_code == 0, result.output
    assert f"created: {writer}, {reader}" in result.output
    assert "hidden from the reader: capital_flows, portfolios, positions" in result.output

    with connect(pg_url, "postgres") as admin:
        rows = admin.execute(
            "SELECT a.rolname, a.rolcanlogin, a.rolpassword, r.rolconfig FROM pg_authid a "
            "JOIN pg_roles r ON r.oid = a.oid WHERE a.rolname = ANY(%s) ORDER BY 1",
            ([writer, reader],)).fetchall()
        owners = dict(admin.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall())
    (r_name, r_login, r_pw, r_config), (w_name, w_login, w_pw, w_config) = rows
    assert (r_name, w_name) == (reader, writer) and r_login and w_login
    # Only SCRAM verifiers reached the server, never the clear passwords.
    assert r_pw.startswith("SCRAM-SHA-256$") and w_pw.startswith("SCRAM-SHA-256$")
    assert os.environ["SIGMASIGHT_READER_PASSWORD"] not in r_pw and os.environ["SIGMASIGHT_WRITER_PASSWORD"] not in w_pw
    assert r_config == ["default_transaction_read_only=on"] and w_config is None
    assert {owners[t.name] for t in metadata.sorted_tables} == {writer}

    # The writer: the repository's own write path, the ledger, and DDL.
    from sigmasight_assets.warehouse import Warehouse
    from sigmasight_assets.warehouse.ledger import read_ledger, store_ledger

    wh = Warehouse(role_url(pg_url, writer))
    wh.check_writable()
    assert wh.replace_partitions("symbol_universe", universe_frame(DAY, ["AAPL", "SPY"]), DAY, DAY) == 2
    from sigmasight_assets.ledger import parse_ledger

    from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    assert len(read_ledger(wh)[0]) > 0
    with connect(pg_url, writer) as w:
        w.execute("CREATE TABLE later_asset (date date, symbol text, beta float8)")
        w.execute("CREATE VIEW later_view AS SELECT date, symbol FROM symbol_universe")
        w.execute("CREATE VIEW ledger_view AS SELECT portfolio_id FROM portfolios")
        w.execute("INSERT INTO later_asset VALUES ('2025-03-05', 'AAPL', 1.1)")

    # The reader: SELECT every asset table (and what the writer created later, through default
    # privileges), nothing on the ledger, no write, no DDL anywhere.
    with connect(pg_url, reader) as r:
        for name in ASSET_TABLES + ["later_asset", "later_view"]:
            r.execute(f'SELECT * FROM "{name}" LIMIT 1')
        assert r.execute("SELECT count(*) FROM symbol_universe").fetchone() == (2,)
        for name in LEDGER_PRESENT:
            assert refused(r, f'SELECT * FROM "{name}" LIMIT 1'), name
        for name in ASSET_TABLES + ["later_asset"]:
            column = next(iter(metadata.tables[name].c)).name if name in metadata.tables else "date"
            assert refused(r, f'INSERT INTO "{name}" DEFAULT VALUES'), name
            assert refused(r, f'UPDATE "{name}" SET "{column}" = "{column}"'), name
            assert refused(r, f'DELETE FROM "{name}"'), name
            assert refused(r, f'TRUNCATE "{name}"'), name
        assert refused(r, "CREATE TABLE public.reader_table (x int)")
        assert refused(r, "CREATE SCHEMA reader_schema")
        assert refused(r, "ALTER TABLE prices ADD COLUMN x int")
        assert refused(r, "DROP TABLE prices")
    # Its sessions are read-only by default as well.
    with connect(pg_url, reader, read_write=False) as r:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            r.execute("CREATE TEMP TABLE t (x int)")

    # A later view over the ledger leaks it through its owner's rights until the grant runs again,
    # which hides it like the table (the documented "run the grant after every upgrade").
    with connect(pg_url, reader) as r:
        r.execute("SELECT * FROM ledger_view")
    result = grant("--writer", writer, "--reader", reader)
    assert result.exit_code == 0, result.output
    assert "created:" not in result.output  # idempotent: roles exist, nothing new
    assert "ledger_view" in result.output.split("hidden from the reader:")[1]
    with connect(pg_url, reader) as r:
        assert refused(r, "SELECT * FROM ledger_view")
        r.execute("SELECT * FROM later_view")


def test_reader_sees_the_ledger_only_when_granted_and_loses_it_again(pg_url, roles):  # noqa: F811
    writer, reader = roles
    assert grant("--writer", writer, "--reader", reader, "--reader-sees-ledger").exit_code == 0
    with connect(pg_url, reader) as r:
        for name in LEDGER_PRESENT:
            r.execute(f'SELECT * FROM "{name}"')
            assert refused(r, f'DELETE FROM "{name}"'), name
    assert grant("--writer", writer, "--reader", reader).exit_code == 0
    with connect(pg_url, reader) as r:
        for name in LEDGER_PRESENT:
            assert refused(r, f'SELECT * FROM "{name}"'), name
    # A reader that is a member of the writer would have every right: refused, nothing changes.
    with connect(pg_url, "postgres") as admin:
        admin.execute(f'GRANT "{writer}" TO "{reader}"')
    result = grant("--writer", writer, "--reader", reader, "--reader-sees-ledger")
    assert result.exit_code == 1 and "cannot be the read-only role" in result.output
    assert "rolled back, nothing changed" in result.output
    with connect(pg_url, "postgres") as admin:
        admin.execute(f'REVOKE "{writer}" FROM "{reader}"')
    with connect(pg_url, reader) as r:
        assert refused(r, "SELECT * FROM positions")


def test_grant_takes_writes_from_other_roles_and_existing_tables_change_owner(pg_url, roles):  # noqa: F811
    """A warehouse that one all-powerful app role created and wrote: after the grant the writer
    owns every table and the old role can no longer write (nor can a role granted INSERT)."""
    import psycopg

    writer, reader = roles
    old = f"ss_old_{uuid.uuid4().hex[:8]}"
    info = _psycopg_conninfo(pg_url)
    with psycopg.connect(**info, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{old}" LOGIN')
        admin.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{old}"')
    try:
        from sigmasight_assets.warehouse import Warehouse

        Warehouse(role_url(pg_url, old)).create_all()  # the old role owns every table
        result = grant("--writer", writer, "--reader", reader)
        assert result.exit_code == 0, result.output
        assert f"tables created by {writer}: none" in result.output
        assert f"write privileges taken from: {old} on schema public" in result.output
        with connect(pg_url, old) as o:
            assert refused(o, "DELETE FROM prices")
            assert refused(o, "CREATE TABLE public.x (y int)")
        with psycopg.connect(**info, autocommit=True) as admin:
            owners = {o for (o,) in admin.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
            admin.execute(f'GRANT INSERT ON prices TO "{old}"')
        assert owners == {writer}
        result = grant("--writer", writer, "--reader", reader)
        assert f"write privileges taken from: {old} on prices" in result.output
        with connect(pg_url, old) as o:
            assert refused(o, "INSERT INTO prices (date, symbol, close, adj_close, source) VALUES ('2025-03-05', 'A', 1, 1, 'x')")
    finally:
        with psycopg.connect(**info, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{old}"')
            admin.execute(f'DROP ROLE "{old}"')


def test_a_database_owner_with_createrole_can_grant_and_passwords_can_be_typed(pg_url, roles, monkeypatch):  # noqa: F811
    """Managed PostgreSQL gives no superuser: the database owner with CREATEROLE runs the grant
    (it makes itself a member of the writer to act for it). Passwords typed at the prompt: a blank
    one keeps the role as it is (a new role stays NOLOGIN)."""
    import psycopg

    writer, reader = roles
    admin = f"ss_admin_{uuid.uuid4().hex[:8]}"
    info = _psycopg_conninfo(pg_url)
    database = make_url(pg_url).database
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{admin}" LOGIN CREATEROLE')
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO "{admin}"')
    try:
        monkeypatch.delenv("SIGMASIGHT_WRITER_PASSWORD")
        monkeypatch.delenv("SIGMASIGHT_READER_PASSWORD")
        monkeypatch.setenv("SIGMASIGHT_ADMIN_DATABASE_URL", role_url(pg_url, admin))
        from sigmasight_assets.cli import main

        result = CliRunner().invoke(main, ["warehouse", "grant", "--writer", writer, "--reader", reader,
                                           "--prompt-passwords"], input="typed-pw\ntyped-pw\n\n\n")
        assert result.exit_code == 0, result.output
        assert "typed-pw" not in result.output
        assert f"{writer}: LOGIN, password set" in result.output and f"{reader}: NOLOGIN (new group role)" in result.output
        with psycopg.connect(**info, autocommit=True) as conn:
            login = dict(conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
                                      ([writer, reader],)).fetchall())
            owners = {o for (o,) in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        assert login == {writer: True, reader: False} and owners == {writer}
    finally:
        with psycopg.connect(**info, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
        with psycopg.connect(**{**info, "dbname": database}, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{admin}"')
        with psycopg.connect(**info, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{admin}"')


def test_a_run_with_the_read_only_role_fails_in_one_line_before_writing(pg_url, roles, monkeypatch):  # noqa: F811
    from sigmasight_assets.local_runs import materialize_range
    from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
    from sigmasight_assets.warehouse import Warehouse, WarehouseNotWritable

    writer, reader = roles
    assert grant("--writer", writer, "--reader", reader).exit_code == 0
    reader_url = role_url(pg_url, reader)

    with pytest.raises(WarehouseNotWritable) as exc:
        Warehouse(reader_url).check_writable()
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"SIGMASIGHT_DATABASE_URL connects as role '{reader}', which cannot write the warehouse")
    assert "read-only" in message and "no INSERT/DELETE on" in message and "writer role" in message
    # The repository's write path is refused by the server too (privileges, not only the check).
    import psycopg
    from sqlalchemy.exc import DBAPIError

    with pytest.raises((DBAPIError, psycopg.Error)):
        Warehouse(reader_url).replace_partitions("symbol_universe", universe_frame(DAY, ["AAPL"]), DAY, DAY)

    # A Dagster run configured by the environment alone fails on that line, and writes nothing.
    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", reader_url)
    result = materialize_range(DAY, DAY, selection=["symbol_universe"], raise_on_error=False,
                               resources={"warehouse": WarehouseResource(),
                                          "market_data": MarketDataResource(spec="synthetic", seed=7)})
    assert not result.success
    errors = []
    for event in result.get_step_failure_events():
        err = event.step_failure_data.error
        while err is not None:
            errors.append(err.message)
            err = err.cause
    ours = [m for m in errors if "WarehouseNotWritable" in m]
    assert ours and ours[0].strip() == f"sigmasight_assets.warehouse.repository.WarehouseNotWritable: {message}"
    assert Warehouse(role_url(pg_url, writer)).count("symbol_universe") == 0


def test_cli_refuses_passwords_on_the_command_line_and_non_postgres_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGMASIGHT_ADMIN_DATABASE_URL", raising=False)
    result = grant("--writer", "w", "--reader", "r")
    assert result.exit_code == 2 and "SIGMASIGHT_ADMIN_DATABASE_URL" in result.output
    result = grant("--writer", "w", "--reader", "r", "--admin-url", "postgresql://admin:s3cret@db:5432/wh")
    assert result.exit_code == 2 and "password on the command line" in result.output
    result = grant("--writer", "w", "--reader", "r", "--admin-url", f"sqlite:///{tmp_path / 'w.sqlite'}")
    assert result.exit_code == 1 and "roles need PostgreSQL" in result.output
    result = grant("--writer", "Writer", "--reader", "r", "--admin-url", "postgresql://admin@db/wh")
    assert result.exit_code == 1 and "--writer 'Writer'" in result.output
    result = grant("--writer", "w", "--reader", "w", "--admin-url", "postgresql://admin@db/wh")
    assert result.exit_code == 1 and "must be another role" in result.output


def test_statements_hide_the_ledger_and_ledger_views_unless_granted():
    plan = RolePlan("wr", "rd", "wh")
    sql = table_statements(plan)
    for name in (t.name for t in metadata.sorted_tables):
        assert f'ALTER TABLE "public"."{name}" OWNER TO "wr"' in sql
        assert f'REVOKE ALL ON TABLE "public"."{name}" FROM "rd"' in sql
        assert (f'GRANT SELECT ON TABLE "public"."{name}" TO "rd"' in sql) == (name not in LEDGER_TABLES)
    views = {"v_prices": {"prices"}, "v_books": {"prices", "positions"}}
    assert view_statements(plan, views) == [
        'REVOKE ALL ON TABLE "public"."v_books" FROM "rd"',
        'REVOKE ALL ON TABLE "public"."v_prices" FROM "rd"', 'GRANT SELECT ON TABLE "public"."v_prices" TO "rd"']
    open_plan = RolePlan("wr", "rd", "wh", reader_sees_ledger=True)
    assert 'GRANT SELECT ON TABLE "public"."positions" TO "rd"' in table_statements(open_plan)
    assert 'GRANT SELECT ON TABLE "public"."v_books" TO "rd"' in view_statements(open_plan, views)
    with pytest.raises(RolesError, match="--reader 'x;drop'"):
        RolePlan("wr", "x;drop", "wh")


def test_check_writable_on_sqlite(tmp_path, monkeypatch):
    from sigmasight_assets.warehouse import Warehouse, WarehouseNotWritable

    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    wh.check_writable()
    wh.create_all()
    with pytest.raises(WarehouseNotWritable, match=r"^SIGMASIGHT_DATABASE_URL opens the SQLite database .* read-only"):
        Warehouse(f"sqlite:///file:{tmp_path / 'w.sqlite'}?mode=ro&uri=true").check_writable()
    # As root every file is writable, so a file the process may not write is simulated.
    import sigmasight_assets.warehouse.roles as roles

    monkeypatch.setattr(roles.os, "access", lambda path, mode: False)
    with pytest.raises(WarehouseNotWritable, match=r"points at the SQLite file .*w.sqlite, which cannot write"):
        wh.check_writable("X_URL")
