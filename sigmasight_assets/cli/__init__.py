"""``sigmasight``: the command line for domain tasks Dagster does not do.

One module per command group: ``portfolios`` (load-portfolios, list, remove-portfolios), ``results``
(show, symbol-status), ``report`` (the HTML risk report), ``demo``, ``backfill`` (a backfill submitted to the Dagster daemon) and
``warehouse`` (schema version, upgrade). Dagster itself (``dagster dev``, the daemon) does
orchestration.

Every command reads the warehouse of ``--database-url`` / ``SIGMASIGHT_DATABASE_URL`` (default the
embedded SQLite file under ``$DAGSTER_HOME``). Long operations show a progress bar on a terminal
(``--progress`` forces it, ``--no-progress`` hides it).
"""

from __future__ import annotations

import warnings

import click

from .backfill import backfill
from .demo import demo
from .portfolios import list_portfolios, load_portfolios, remove_portfolios
from .report import report
from .results import show, symbol_status
from .warehouse import warehouse


HELP_OPTIONS = ["-h", "--help"]
WANTS_HELP = "sigmasight.wants_help"


class SigmasightGroup(click.Group):
    """The command group: a user's mistake (a wrong setting, a warehouse URL that cannot be used)
    ends the command with one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        from ..defs.preflight import user_errors

        # The arguments after the command's name, before Click hands them to the command.
        ctx.meta[WANTS_HELP] = any(arg in HELP_OPTIONS for arg in ctx.args)
        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            from ..defs.preflight import one_line

            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(2)


@click.group(cls=SigmasightGroup, context_settings={"help_option_names": HELP_OPTIONS})
@click.pass_context
def main(ctx: click.Context) -> None:
    """SigmaSight Assets: daily portfolio risk analytics on Dagster.

    \b
    Portfolios:  load-portfolios, list, remove-portfolios
    Results:     show PORTFOLIO_ID, report PORTFOLIO_ID --html out.html, symbol-status SYMBOL...
    History:     backfill --from D1 --to D2 (runs for the Dagster daemon)
    Warehouse:   warehouse version, warehouse upgrade, warehouse grant (PostgreSQL roles)
    End to end:  demo
    Orchestration (materialise, lineage, checks) is Dagster's: `dagster dev -w workspace.yaml`.
    """
    # Every setting is checked before the command does anything (the warehouse URL by the command,
    # which may take it from --database-url); asking for --help needs no valid settings.
    if not ctx.meta.get(WANTS_HELP):
        from ..defs.preflight import check_settings

        check_settings(database=False)


# The beta Dagster APIs the code location uses on purpose (backfill policies, observable sources) warn
# on every import of the definitions; a command's output is not the place for that.
warnings.filterwarnings("ignore", message=r".* is currently in beta")

for command in (load_portfolios, list_portfolios, remove_portfolios, show, report, symbol_status, demo, backfill, warehouse):
    main.add_command(command)

__all__ = ["main"]
