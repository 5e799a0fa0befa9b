"""Engine construction from a URL, with the dialect settings the warehouse relies on."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

#: Page size of a new SQLite warehouse. A ``correlations`` row (~2.7 KB at 25 holdings) fits once in
#: a 4 KB page, wasting a third of it; 16 KB pages hold six. Set before the file's first write (an
#: existing file keeps its size until ``sigmasight warehouse upgrade`` rebuilds it).
SQLITE_PAGE_SIZE = 16384


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """A shared engine per URL.

    SQLite gets 16 KB pages (new files), WAL journaling and a busy timeout so a reader and a writer (or two runs of the same
    partition) wait for each other instead of failing with "database is locked". A bare
    ``postgresql://`` URL is mapped to psycopg 3.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # no effect on an existing file
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True)


class WarehouseURLError(ValueError):
    """The warehouse URL cannot be used: unparseable, an unknown driver, a server that cannot be
    reached, a database that does not exist. The message is one line naming the setting."""


URL_EXAMPLES = "e.g. postgresql+psycopg://user@host:5432/sigmasight or sqlite:////path/to/warehouse.sqlite"
CONNECT_TIMEOUT_S = 5


def masked(raw: str) -> str:
    """``raw`` with any password between ``user:`` and ``@`` replaced by ``***`` (works on strings
    SQLAlchemy cannot parse, which is when the raw text is shown)."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", raw)


def check_url(url: str, setting: str = "SIGMASIGHT_DATABASE_URL") -> None:
    """Raise :class:`WarehouseURLError` unless ``url`` parses, names an installed driver and (for a
    server database) accepts a connection to an existing database within ``CONNECT_TIMEOUT_S``
    seconds; for SQLite the file's directory must exist (the file itself is created on first use).

    The message is one line: the setting, the URL (password masked) and what is wrong or expected.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    shown = masked(str(url))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WarehouseURLError(f"{setting}={shown!r} is not a database URL ({URL_EXAMPLES})") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:"):
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise WarehouseURLError(f"{setting}={shown!r}: the directory {parent} does not exist "
                                        "(create it, or point the URL at an existing directory)")
        return
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend == "postgresql" else {}
    try:
        engine = create_engine(parsed, connect_args=connect_args, poolclass=NullPool)
    except NoSuchModuleError:
        raise WarehouseURLError(f"{setting}={shown!r}: unknown database driver {parsed.drivername!r} "
                                f"({URL_EXAMPLES})") from None
    except (ImportError, ArgumentError) as exc:
        raise WarehouseURLError(f"{setting}={shown!r}: cannot use driver {parsed.drivername!r}: "
                                f"{_first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise WarehouseURLError(f"{setting}={shown!r}: {_connect_problem(parsed, exc)}") from None
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(getattr(exc, "orig", None) or exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _connect_problem(parsed, exc) -> str:
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}" if parsed.get_backend_name() == "postgresql" else (
        parsed.host or "the server")
    detail = _first_line(exc)
    low = detail.lower()
    if "database" in low and "does not exist" in low:
        return (f"database {parsed.database!r} does not exist on {where} (create it, e.g. `createdb "
                f"{parsed.database}`, or name an existing database)")
    if "password authentication failed" in low or "authentication failed" in low:
        return f"the server at {where} refused user {parsed.username!r}: {detail}"
    if "role" in low and "does not exist" in low:
        return f"the server at {where} has no user {parsed.username!r}: {detail}"
    return f"cannot connect to the server at {where}: {detail}"
