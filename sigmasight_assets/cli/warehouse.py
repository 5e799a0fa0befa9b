"""``warehouse version`` and ``warehouse upgrade``: the warehouse's schema version."""

from __future__ import annotations

import click

from .. import config
from .common import DATABASE_URL_HELP


@click.group("warehouse")
def warehouse() -> None:
    """The warehouse's schema version (see sigmasight_assets/warehouse/versions.py)."""


@warehouse.command("version")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def version(database_url: str | None) -> None:
    """Print the warehouse's schema version and the one this code needs."""
    from ..warehouse import Warehouse
    from ..warehouse.versions import CURRENT_VERSION, stored_version

    wh = Warehouse(database_url or config.database_url())
    with wh.engine.connect() as conn:
        stored = stored_version(conn)
    click.echo(f"warehouse schema version: {'none (empty database)' if stored is None else stored}; "
               f"this code needs {CURRENT_VERSION}")


@warehouse.command("upgrade")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def upgrade(database_url: str | None) -> None:
    """Upgrade the warehouse in place to this code's schema version (one transaction)."""
    from ..warehouse import Warehouse
    from ..warehouse.versions import CURRENT_VERSION, upgrade as run_upgrade

    wh = Warehouse(database_url or config.database_url())
    steps = run_upgrade(wh.engine)
    if not steps:
        click.echo(f"warehouse is at schema version {CURRENT_VERSION}: nothing to do")
        return
    for step in steps:
        click.echo(f"version {step.version}: {step.description}")
        for op in step.operations:
            click.echo(f"  {op.describe()}")
    click.echo(f"warehouse upgraded to schema version {CURRENT_VERSION}")
