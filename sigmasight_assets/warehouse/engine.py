"""Engine construction from a URL, with the dialect settings the warehouse relies on."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

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
