"""``sigmasight warehouse …``: the warehouse's schema version and its PostgreSQL roles.

``version`` / ``upgrade``: the schema version (``sigmasight_assets/warehouse/versions.py``).

``grant --writer NAME --reader NAME [--reader-sees-ledger]`` creates or updates the writer role (the
runs: the only role that can insert, delete or create) and the read-only role (analysts, BI:
``SELECT`` on every asset table and view, not the ledger unless granted); see
:mod:`sigmasight_assets.warehouse.roles`. Run it as an admin of the warehouse database (its own
database: the grant owns schema ``public`` there), again after every upgrade: it is idempotent and
creates the tables a new version adds before granting. Passwords never go on the command line:
``SIGMASIGHT_WRITER_PASSWORD`` / ``SIGMASIGHT_READER_PASSWORD`` or ``--prompt-passwords``; the admin
URL comes from ``SIGMASIGHT_ADMIN_DATABASE_URL`` (its password there or in libpq's ``PGPASSWORD`` /
``~/.pgpass``).
"""

from __future__ import annotations

import os

import click
from click.core import ParameterSource
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .. import config
from .common import DATABASE_URL_HELP

ADMIN_URL_ENV = "SIGMASIGHT_ADMIN_DATABASE_URL"


def checked_url(database_url: str | None) -> str:
    """The URL to use (option, variable or default), checked: one line naming the setting if unusable."""
    from ..warehouse.engine import check_url
    from .common import url_setting

    url = database_url or config.database_url()
    check_url(url, url_setting(url))
    return url


@click.group("warehouse")
def warehouse() -> None:
    """The warehouse: schema version and upgrade, PostgreSQL roles (writer, read-only)."""


@warehouse.command("version")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def version(database_url: str | None) -> None:
    """Print the warehouse's schema version and the one this code needs."""
    from ..warehouse import Warehouse
    from ..warehouse.versions import CURRENT_VERSION, stored_version

    wh = Warehouse(checked_url(database_url))
    with wh.engine.connect() as conn:
        stored = stored_version(conn)
    click.echo(f"warehouse schema version: {'none (empty database)' if stored is None else stored}; "
               f"this code needs {CURRENT_VERSION}")


@warehouse.command("upgrade")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
@click.option("--rebuild-market-data", is_flag=True,
              help="For an upgrade that cannot carry stored prices over (version 3: prices before corporate "
                   "actions): delete prices and every table computed from them (the ledger is kept); backfill "
                   "afterwards.")
def upgrade(database_url: str | None, rebuild_market_data: bool = False) -> None:
    """Upgrade the warehouse in place to this code's schema version (one transaction)."""
    from ..warehouse import Warehouse
    from ..warehouse.versions import CURRENT_VERSION, WarehouseSchemaError, upgrade as run_upgrade

    wh = Warehouse(checked_url(database_url))
    try:
        steps = run_upgrade(wh.engine, rebuild_market_data=rebuild_market_data)
    except WarehouseSchemaError as exc:
        raise click.ClickException(str(exc)) from None
    if not steps:
        click.echo(f"warehouse is at schema version {CURRENT_VERSION}: nothing to do")
        return
    for step in steps:
        click.echo(f"version {step.version}: {step.description}")
        for op in step.operations:
            click.echo(f"  {op.describe()}")
    filled = _fill_symbol_returns(wh)
    if filled:
        click.echo(f"  symbol_returns computed from the stored prices: {filled:,} rows")
    click.echo(f"warehouse upgraded to schema version {CURRENT_VERSION}")


def _fill_symbol_returns(wh) -> int:
    """Compute ``symbol_returns`` for the stored prices when the table is new (a warehouse whose prices
    already carried corporate actions): every return-based asset reads it, so history stays usable."""
    from sqlalchemy import func, select

    from .. import calendar
    from ..pipelines.returns import store_symbol_returns

    prices, rets = wh.table("prices"), wh.table("symbol_returns")
    with wh.engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(rets)).scalar():
            return 0
        lo, hi = conn.execute(select(func.min(prices.c.date), func.max(prices.c.date))).one()
    if lo is None:
        return 0
    days = calendar.sessions(lo, hi)
    return store_symbol_returns(wh, days, None).written if len(days) else 0


@warehouse.command("grant")
@click.option("--writer", required=True, help="Role of the runs: owns the tables, the only one that writes.")
@click.option("--reader", required=True, help="Read-only role for analysts and BI tools.")
@click.option("--reader-sees-ledger", is_flag=True,
              help="Also let the reader SELECT the ledger (portfolios, positions, capital flows, private marks).")
@click.option("--admin-url", envvar=ADMIN_URL_ENV, metavar="URL",
              help=f"Warehouse database as an admin role (default: ${ADMIN_URL_ENV}); keep its password out "
                   "of the command line (the variable, PGPASSWORD or ~/.pgpass).")
@click.option("--prompt-passwords", is_flag=True,
              help="Ask for the writer's and the reader's passwords (blank keeps the current one).")
@click.option("--dry-run", is_flag=True, help="Print the statements and roll back: nothing changes.")
@click.pass_context
def grant(ctx: click.Context, writer: str, reader: str, reader_sees_ledger: bool, admin_url: str | None,
          prompt_passwords: bool, dry_run: bool) -> None:
    """Create or update the writer and the read-only role and all their privileges.

    \b
    Roles that do not exist are created NOLOGIN (group roles: GRANT them to people's logins),
    or LOGIN when a password is given:
      SIGMASIGHT_WRITER_PASSWORD, SIGMASIGHT_READER_PASSWORD, or --prompt-passwords.
    Tables (and views) the writer creates later are readable by the reader automatically.
    """
    from ..warehouse.roles import READER_PASSWORD_ENV, WRITER_PASSWORD_ENV, RolesError, apply_grants

    if not admin_url:
        raise click.UsageError(f"no admin URL: set {ADMIN_URL_ENV} (or --admin-url) to the warehouse database "
                               "as a role that may create roles")
    if ctx.get_parameter_source("admin_url") == ParameterSource.COMMANDLINE and make_url(admin_url).password:
        raise click.UsageError(f"--admin-url carries a password on the command line: put the URL in {ADMIN_URL_ENV}, "
                               "or the password in PGPASSWORD or ~/.pgpass")
    passwords = {WRITER_PASSWORD_ENV: os.environ.get(WRITER_PASSWORD_ENV) or None,
                 READER_PASSWORD_ENV: os.environ.get(READER_PASSWORD_ENV) or None}
    if prompt_passwords:
        for env, role in ((WRITER_PASSWORD_ENV, writer), (READER_PASSWORD_ENV, reader)):
            typed = click.prompt(f"password for {role} (blank: keep)", default="", hide_input=True,
                                 confirmation_prompt=True, show_default=False)
            passwords[env] = typed or passwords[env]
    try:
        report = apply_grants(admin_url, writer, reader, reader_sees_ledger=reader_sees_ledger,
                              writer_password=passwords[WRITER_PASSWORD_ENV],
                              reader_password=passwords[READER_PASSWORD_ENV], dry_run=dry_run)
    except RolesError as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"the grant was rolled back, nothing changed: {first}") from exc

    if dry_run:
        click.echo("\n".join(s + ";" if not s.startswith("--") else s for s in report.statements))
        click.echo("-- dry run: rolled back, nothing changed")
        return
    created = f" (created: {', '.join(report.created_roles)})" if report.created_roles else ""
    click.echo(f"writer {writer} and reader {reader} up to date{created}")
    click.echo(f"  tables created by {writer}: {', '.join(report.tables_created) or 'none (all existed)'}")
    click.echo(f"  reader may SELECT {len(report.reader_tables)} tables and {len(report.reader_views)} views")
    hidden = report.hidden_tables + report.hidden_views
    click.echo(f"  hidden from the reader: {', '.join(hidden) or 'nothing (--reader-sees-ledger)'}")
    if report.revoked_writes:
        click.echo("  write privileges taken from: " + ", ".join(
            f"{r} on {t or 'schema public'}" for r, t in report.revoked_writes))
    for role in (writer, reader):
        login = "LOGIN, password set" if role in report.passwords_set else (
            "NOLOGIN (new group role)" if role in report.created_roles else "login and password unchanged")
        click.echo(f"  {role}: {login}")
