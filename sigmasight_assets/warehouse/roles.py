"""Warehouse roles on PostgreSQL: one writer for the runs, one read-only role for analysts and BI.

The writer owns every warehouse table and is the only role that can insert, update, delete,
truncate or create in the warehouse schema; the Dagster runs connect as the writer
(``SIGMASIGHT_DATABASE_URL``). The reader can ``SELECT`` every asset table and view and nothing
else: no write, no ``CREATE`` in the schema or the database, and by default nothing on the ledger
tables (:data:`LEDGER_TABLES`: portfolios, positions, capital flows, private marks), which hold the
clients' books. Its sessions also start read-only (``default_transaction_read_only``).

Tables come from ``warehouse.schema.metadata``, so a table added there is covered by the next run of
:func:`apply_grants`; tables the writer creates later (a new asset's table made by its first run) are
readable by the reader through ``ALTER DEFAULT PRIVILEGES``. A new *ledger* table must be listed in
:data:`LEDGER_TABLES` and the grant run again (it creates the missing tables before granting), or the
default privileges would open it to the reader: run the grant as part of every upgrade.

Roles: a role that does not exist yet is created ``NOLOGIN`` (a group role; grant it to people's own
login roles, ``GRANT sigmasight_reader TO alice``) unless a password is given, which makes it
``LOGIN``. Passwords are never taken on a command line and never sent in clear: the SCRAM-SHA-256
verifier is computed by libpq on the client and only the verifier reaches the server (and its logs).

Everything runs in one transaction: a failure leaves roles and privileges as they were.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from .schema import metadata

# The portfolio ledger: the clients' books as loaded (not computed), hidden from the reader unless
# the grant says otherwise. ``private_marks`` is listed before its table exists so that it is hidden
# from the moment it is created.
LEDGER_TABLES: tuple[str, ...] = ("portfolios", "positions", "capital_flows", "private_marks")

WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

WRITER_PASSWORD_ENV = "SIGMASIGHT_WRITER_PASSWORD"
READER_PASSWORD_ENV = "SIGMASIGHT_READER_PASSWORD"


class RolesError(ValueError):
    """A role setting is unusable; the one-line message names the option or the role."""


def quote_ident(name: str) -> str:
    """An SQL identifier, always double-quoted (role and schema names are validated before)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class RolePlan:
    """Who writes, who reads, in which database, and whether the reader sees the ledger.

    The warehouse tables live in schema ``public`` of a database of their own (the runs create
    them on the default search path); ``schema`` names it in the statements."""

    writer: str
    reader: str
    database: str
    schema: str = "public"
    reader_sees_ledger: bool = False

    def __post_init__(self) -> None:
        for option, name in (("--writer", self.writer), ("--reader", self.reader), ("schema", self.schema)):
            if not ROLE_NAME.match(name or ""):
                raise RolesError(f"{option} {name!r}: use a lower-case SQL name (letters, digits, _; at most 63)")
        if self.writer == self.reader:
            raise RolesError(f"--writer and --reader are both {self.writer!r}: the reader must be another role")
        if not self.database:
            raise RolesError("the admin URL names no database: add /DBNAME (the warehouse database)")

    def table_names(self, tables: Iterable[str] | None = None) -> list[str]:
        """The warehouse tables in creation order (``metadata`` by default)."""
        return list(tables) if tables is not None else [t.name for t in metadata.sorted_tables]

    def reader_may_read(self, table: str) -> bool:
        return self.reader_sees_ledger or table not in LEDGER_TABLES


@dataclass
class GrantReport:
    """What :func:`apply_grants` did (or, with ``dry_run``, would do)."""

    statements: list[str]
    created_roles: list[str] = field(default_factory=list)
    tables_created: list[str] = field(default_factory=list)
    reader_tables: list[str] = field(default_factory=list)
    hidden_tables: list[str] = field(default_factory=list)
    reader_views: list[str] = field(default_factory=list)
    hidden_views: list[str] = field(default_factory=list)
    revoked_writes: list[tuple[str, str | None]] = field(default_factory=list)  # (role, table or None: schema)
    passwords_set: list[str] = field(default_factory=list)


# -- statements ---------------------------------------------------------------------------------------
def role_statements(plan: RolePlan) -> list[str]:
    """Create missing roles (``NOLOGIN``), refuse a reader that could write anyway, and start the
    reader's sessions read-only. Idempotent."""
    r = quote_ident(plan.reader)
    out = []
    for name in (plan.writer, plan.reader):
        out.append(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
            f"{quote_literal(name)}) THEN CREATE ROLE {quote_ident(name)} NOLOGIN; END IF; END $$"
        )
    # Superuser status or membership in the writer would give the reader every right back.
    refusal = f"role {plan.reader} is a superuser or a member of {plan.writer}: it cannot be the read-only role"
    out.append(
        "DO $$ BEGIN IF (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = "
        f"{quote_literal(plan.reader)}) OR pg_has_role({quote_literal(plan.reader)}, {quote_literal(plan.writer)}, "
        f"'MEMBER') THEN RAISE EXCEPTION {quote_literal(refusal)}; END IF; END $$"
    )
    # The admin must be able to act as the writer (own its tables, set its default privileges).
    out.append(
        "DO $$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AND NOT "
        f"pg_has_role(current_user, {quote_literal(plan.writer)}, 'MEMBER') THEN "
        f"EXECUTE 'GRANT ' || quote_ident({quote_literal(plan.writer)}) || ' TO ' || quote_ident(current_user); "
        "END IF; END $$"
    )
    out.append(f"ALTER ROLE {r} SET default_transaction_read_only = on")
    return out


def schema_statements(plan: RolePlan) -> list[str]:
    """Connect to the database; only the writer creates in the schema."""
    w, r, s, db = (quote_ident(x) for x in (plan.writer, plan.reader, plan.schema, plan.database))
    return [
        f"GRANT CONNECT ON DATABASE {db} TO {w}, {r}",
        f"REVOKE CREATE ON DATABASE {db} FROM {r}",
        # PostgreSQL ≤ 14 lets every role create in ``public``; from 15 on this changes nothing.
        f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",
        f"GRANT USAGE, CREATE ON SCHEMA {s} TO {w}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
    ]


def table_statements(plan: RolePlan, tables: Iterable[str] | None = None) -> list[str]:
    """Per existing warehouse table: the writer owns it, nobody else is granted anything by
    default, the reader gets ``SELECT`` unless it is a ledger table (and the ledger is not granted)."""
    w, r, s = (quote_ident(x) for x in (plan.writer, plan.reader, plan.schema))
    out = []
    for name in plan.table_names(tables):
        t = f"{s}.{quote_ident(name)}"
        out += [f"ALTER TABLE {t} OWNER TO {w}", f"REVOKE ALL ON TABLE {t} FROM PUBLIC", f"REVOKE ALL ON TABLE {t} FROM {r}"]
        if plan.reader_may_read(name):
            out.append(f"GRANT SELECT ON TABLE {t} TO {r}")
    return out


def view_statements(plan: RolePlan, views: Mapping[str, set[str]]) -> list[str]:
    """``views`` maps each view of the schema to the tables it reads: a view over a ledger table is
    hidden like the table (a view runs with its owner's rights, so it would leak the ledger)."""
    r, s = quote_ident(plan.reader), quote_ident(plan.schema)
    out = []
    for view, reads in sorted(views.items()):
        v = f"{s}.{quote_ident(view)}"
        out.append(f"REVOKE ALL ON TABLE {v} FROM {r}")
        if all(plan.reader_may_read(t) for t in reads):
            out.append(f"GRANT SELECT ON TABLE {v} TO {r}")
    return out


def revoke_write_statements(plan: RolePlan, other_writers: Sequence[tuple[str, str | None]]) -> list[str]:
    """Take write privileges on warehouse tables (``(role, table)``) and ``CREATE`` on the schema
    (``(role, None)``) from every role but the writer."""
    s = quote_ident(plan.schema)
    return [f"REVOKE CREATE ON SCHEMA {s} FROM {quote_ident(role)}" if table is None else
            f"REVOKE {', '.join(WRITE_PRIVILEGES)} ON TABLE {s}.{quote_ident(table)} FROM {quote_ident(role)}"
            for role, table in other_writers]


def default_privilege_statements(plan: RolePlan) -> list[str]:
    """Tables and views the writer creates later are readable by the reader, and by nobody else."""
    w, r, s = (quote_ident(x) for x in (plan.writer, plan.reader, plan.schema))
    return [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {w} IN SCHEMA {s} REVOKE ALL ON TABLES FROM PUBLIC",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {w} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
    ]


def password_statement(role: str, verifier: str) -> str:
    """``LOGIN`` with a password given as its SCRAM verifier (never the clear text)."""
    if not verifier.startswith("SCRAM-SHA-256$"):
        raise RolesError(f"refusing to send a password for {role!r} that is not a SCRAM-SHA-256 verifier")
    return f"ALTER ROLE {quote_ident(role)} LOGIN PASSWORD {quote_literal(verifier)}"


# -- catalog reads ------------------------------------------------------------------------------------
def existing_tables(conn: Connection, schema: str) -> set[str]:
    return set(inspect(conn).get_table_names(schema=schema))


def schema_views(conn: Connection, schema: str) -> dict[str, set[str]]:
    """Views and materialised views of ``schema`` with the tables each one reads."""
    rows = conn.execute(text(
        "SELECT v.relname, t.relname FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace "
        "LEFT JOIN pg_rewrite rw ON rw.ev_class = v.oid "
        "LEFT JOIN pg_depend d ON d.objid = rw.oid AND d.classid = 'pg_rewrite'::regclass "
        "AND d.refclassid = 'pg_class'::regclass "
        "LEFT JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid "
        "WHERE n.nspname = :schema AND v.relkind IN ('v', 'm')"
    ), {"schema": schema}).fetchall()
    views: dict[str, set[str]] = {}
    for view, table in rows:
        views.setdefault(view, set())
        if table is not None:
            views[view].add(table)
    return views


def roles_with_write(conn: Connection, schema: str, tables: Iterable[str], writer: str) -> list[tuple[str, str | None]]:
    """(role, table) for every role other than ``writer`` (and PUBLIC) granted a write privilege on
    one of ``tables``, and (role, None) for every such role granted ``CREATE`` on ``schema`` (its
    owner keeps it: ownership is the database owner's business). Previous table owners lost their
    rights with the ownership change."""
    creators = conn.execute(text(
        "SELECT DISTINCT r.rolname FROM pg_namespace n, LATERAL aclexplode(n.nspacl) a "
        "JOIN pg_roles r ON r.oid = a.grantee WHERE n.nspname = :schema AND a.privilege_type = 'CREATE' "
        "AND r.rolname <> :writer AND a.grantee <> n.nspowner ORDER BY 1"
    ), {"schema": schema, "writer": writer}).fetchall()
    rows = conn.execute(text(
        "SELECT DISTINCT r.rolname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
        "LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE n.nspname = :schema AND c.relname = ANY(:tables) AND a.privilege_type = ANY(:privs) "
        "AND r.rolname <> :writer AND a.grantee <> c.relowner ORDER BY 2, 1"
    ), {"schema": schema, "tables": list(tables), "privs": list(WRITE_PRIVILEGES), "writer": writer}).fetchall()
    return [(role, None) for (role,) in creators] + [(role, table) for role, table in rows]


def scram_verifier(conn: Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, computed by libpq on this side of the connection."""
    raw = conn.connection.driver_connection
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is None:  # pragma: no cover - psycopg2 URLs are mapped to psycopg 3 below
        raise RolesError("setting passwords needs the psycopg 3 driver (postgresql+psycopg://)")
    return pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


# -- can this URL write? -------------------------------------------------------------------------------
def write_problems(wh) -> tuple[str, list[str]]:
    """(how it connects, why it cannot write the warehouse) for a :class:`~.repository.Warehouse`.

    PostgreSQL: the role needs ``INSERT`` and ``DELETE`` on every existing warehouse table,
    ``CREATE`` on its schema while a table is missing, and a read-write session (not a standby,
    not ``default_transaction_read_only``). SQLite: the file, or before it exists its directory,
    must be writable by this process. Nothing is written.
    """
    if wh.dialect == "sqlite":
        url = make_url(wh.url)
        path = url.database
        if url.query.get("mode") == "ro":
            return f"opens the SQLite database {path} read-only", ["mode=ro"]
        if not path or path == ":memory:" or path.startswith("file:"):
            return f"uses the SQLite database {path or ':memory:'}", []
        target = Path(path) if Path(path).exists() else Path(path).resolve().parent
        who = f"points at the SQLite {'file' if target.is_file() else 'directory'} {target}"
        return who, ([] if os.access(target, os.W_OK) else ["this process may not write it"])
    if wh.dialect != "postgresql":
        return f"uses a {wh.dialect} database", []
    names = [t.name for t in metadata.sorted_tables]
    with wh.engine.connect() as conn:
        role, standby, read_only, schema = conn.execute(text(
            "SELECT current_user, pg_is_in_recovery(), current_setting('transaction_read_only'), current_schema()"
        )).one()
        rows = conn.execute(text(
            "SELECT t.name, has_table_privilege(to_regclass(t.name), 'INSERT') "
            "AND has_table_privilege(to_regclass(t.name), 'DELETE') "
            "FROM unnest(CAST(:names AS text[])) AS t(name) WHERE to_regclass(t.name) IS NOT NULL"
        ), {"names": names}).fetchall()
        can_create = schema is not None and bool(conn.execute(
            text("SELECT has_schema_privilege(:s, 'CREATE')"), {"s": schema}).scalar_one())
    problems = []
    if standby:
        problems.append("the server is a read-only standby")
    elif read_only == "on":
        problems.append("its sessions are read-only (default_transaction_read_only)")
    denied = [name for name, ok in rows if not ok]
    if denied:
        shown = ", ".join(denied[:4]) + (f" and {len(denied) - 4} more" if len(denied) > 4 else "")
        problems.append(f"no INSERT/DELETE on {shown}")
    missing = set(names) - {name for name, _ in rows}
    if missing and not can_create:
        problems.append(f"no CREATE on schema {schema} for {len(missing)} missing tables")
    return f"connects as role {role!r}", problems


# -- the command ----------------------------------------------------------------------------------------
def admin_engine(admin_url: str):
    """A one-off engine (no pool, nothing cached) for the admin connection, on psycopg 3."""
    url = make_url(admin_url)
    if url.get_backend_name() != "postgresql":
        raise RolesError(f"roles need PostgreSQL; the admin URL is {url.get_backend_name()} "
                         "(SQLite has no roles: protect its file instead)")
    return create_engine(url.set(drivername="postgresql+psycopg"), poolclass=NullPool)


def apply_grants(admin_url: str, writer: str, reader: str, *, reader_sees_ledger: bool = False,
                 writer_password: str | None = None, reader_password: str | None = None,
                 dry_run: bool = False) -> GrantReport:
    """Create or update the writer and reader roles and every privilege, in one transaction.

    Parameters
    ----------
    admin_url
        SQLAlchemy URL of the warehouse database as a role that may create roles and act as the
        writer (a superuser, or the database owner with ``CREATEROLE``).
    writer, reader
        Role names (lower-case SQL names); created ``NOLOGIN`` when missing.
    reader_sees_ledger
        Grant the reader ``SELECT`` on the ledger tables too (otherwise revoked).
    writer_password, reader_password
        When given, the role becomes ``LOGIN`` with that password (sent as a SCRAM verifier).
    dry_run
        Compute the statements (reading the catalog) and roll back: nothing changes.

    Returns
    -------
    GrantReport
        The statements run (passwords shown as ``<scram verifier>``) and what they did.
    """
    engine = admin_engine(admin_url)
    plan = RolePlan(writer, reader, make_url(admin_url).database or "", reader_sees_ledger=reader_sees_ledger)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                report = _grant(conn, plan, writer_password, reader_password)
            except Exception:
                trans.rollback()
                raise
            (trans.rollback if dry_run else trans.commit)()
            return report
    finally:
        engine.dispose()


def _grant(conn: Connection, plan: RolePlan, writer_password: str | None, reader_password: str | None) -> GrantReport:
    before = {r for (r,) in conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"),
                                         {"n": [plan.writer, plan.reader]})}
    statements = [*role_statements(plan), *schema_statements(plan)]
    for sql in statements:
        conn.exec_driver_sql(sql)
    report = GrantReport(statements=list(statements),
                         created_roles=[r for r in (plan.writer, plan.reader) if r not in before])

    # The writer creates what is missing, so it owns it (the same DDL the runs would issue).
    missing = [t.name for t in metadata.sorted_tables if t.name not in existing_tables(conn, plan.schema)]
    conn.exec_driver_sql(f"SET LOCAL ROLE {quote_ident(plan.writer)}")
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name in missing])
    conn.exec_driver_sql("RESET ROLE")
    report.tables_created = missing
    report.statements.append(f"-- created as {plan.writer}: {', '.join(missing) or 'nothing (all tables exist)'}")

    tables = [t for t in plan.table_names() if t in existing_tables(conn, plan.schema)]
    views = schema_views(conn, plan.schema)
    tail = [*table_statements(plan, tables), *view_statements(plan, views)]
    for sql in tail:
        conn.exec_driver_sql(sql)
    # After the ownership change: only explicit grants to other roles are left to take back.
    others = roles_with_write(conn, plan.schema, tables, plan.writer)
    tail2 = [*revoke_write_statements(plan, others), *default_privilege_statements(plan)]
    for sql in tail2:
        conn.exec_driver_sql(sql)
    report.statements += tail + tail2
    report.reader_tables = [t for t in tables if plan.reader_may_read(t)]
    report.hidden_tables = [t for t in tables if not plan.reader_may_read(t)]
    report.reader_views = sorted(v for v, reads in views.items() if all(plan.reader_may_read(t) for t in reads))
    report.hidden_views = sorted(set(views) - set(report.reader_views))
    report.revoked_writes = others

    for role, password in ((plan.writer, writer_password), (plan.reader, reader_password)):
        if password:
            conn.exec_driver_sql(password_statement(role, scram_verifier(conn, role, password)))
            report.statements.append(f"ALTER ROLE {quote_ident(role)} LOGIN PASSWORD '<scram verifier>'")
            report.passwords_set.append(role)
    return report
