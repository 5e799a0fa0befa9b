"""Throwaway PostgreSQL databases for the benchmark (created on the server, dropped afterwards)."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _admin(server_url: str):
    return create_engine(server_url, isolation_level="AUTOCOMMIT")


def available(server_url: str = DEFAULT_PG_URL) -> str | None:
    """None when the server answers, else the reason."""
    try:
        eng = _admin(server_url)
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any driver or connection error
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` (dropping a leftover of the same name) and return its URL."""
    if not _NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    eng = _admin(server_url)
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    eng = _admin(server_url)
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()
