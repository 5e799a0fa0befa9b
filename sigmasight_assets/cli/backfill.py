"""``backfill``: submit a partition backfill of exactly the chosen trading days to the Dagster instance.

The backfill is the one the UI's GraphQL API creates for per-asset partition ranges
(``launchPartitionBackfill`` with ``partitionsByAssets``, sent through Dagster's own ``dagster-graphql``
command line, so no webserver is needed): the daemon splits it into runs of at most
``PARTITIONS_PER_RUN`` partitions, orders them along the lineage (a look-back window's runs start
once the days they read are stored) and the run queue executes them side by side. Every asset gets
exactly the days asked for — none of the downstream days a look-back window would add.
"""

from __future__ import annotations

import sys
import time

import click
import pandas as pd

from .. import calendar
from .launch import MODULE, graphql

LAUNCH = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message }
  ... on PartitionKeysNotFoundError { message }
  ... on UnauthorizedError { message } } }
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def backfill_days(start: str, end: str) -> list[str]:
    """The partition keys (trading days) in [start, end]; a bound that is no trading day moves inward."""
    from ..defs.partitions import trading_days

    try:
        sessions = calendar.sessions(pd.Timestamp(start), pd.Timestamp(end))
    except ValueError as exc:
        raise click.BadParameter(f"{exc}", param_hint="--from/--to") from None
    return [d.date().isoformat() for d in sessions if trading_days.has_partition_key(d.date().isoformat())]


def launch_params(keys: list[str], assets: list[str], title: str) -> dict:
    return {
        "title": title,
        "partitionsByAssets": [{"assetKey": {"path": [a]}, "partitions": {"range": {"start": keys[0], "end": keys[-1]}}}
                               for a in assets],
        "tags": [{"key": "sigmasight/trigger", "value": "sigmasight backfill"}],
    }


@click.command("backfill")
@click.option("--from", "start", required=True, help="First trading day (YYYY-MM-DD).")
@click.option("--to", "end", required=True, help="Last trading day (YYYY-MM-DD).")
@click.option("--select", multiple=True, help="An asset to backfill (repeat it); default every partitioned asset.")
@click.option("--title", default=None, help="Title shown in the UI (default: the range).")
@click.option("--wait/--no-wait", default=False, help="Wait until the daemon has finished the backfill.")
@click.option("--workspace", "-w", type=click.Path(dir_okay=False), default=None,
              help="workspace.yaml to load the code location from (default: the module sigmasight_assets.definitions).")
def backfill(start: str, end: str, select: tuple[str, ...], title: str | None, wait: bool, workspace: str | None) -> None:
    """Backfill exactly the trading days from --from to --to through the Dagster daemon.

    Submits a backfill to the instance in $DAGSTER_HOME; the daemon (`dagster-daemon run`, or
    `dagster dev`) executes it as runs of at most PARTITIONS_PER_RUN days, queued and run side by
    side. The backfill and its runs show in the UI under Overview → Backfills.
    """
    from ..defs.common import PARTITIONS_PER_RUN
    from ..defs.preflight import check_database_url
    from ..local_runs import partitioned_assets

    check_database_url()  # the runs will write there: refuse the backfill now rather than fail every run
    keys = backfill_days(start, end)
    if not keys:
        raise click.BadParameter(f"no trading day in {start}..{end}", param_hint="--from/--to")
    known = sorted({k.to_user_string() for a in partitioned_assets() for k in a.keys})
    assets = sorted(set(select)) if select else known
    unknown = sorted(set(assets) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown asset(s) {unknown}; partitioned assets: {', '.join(known)}",
                                 param_hint="--select")
    params = launch_params(keys, assets, title or f"sigmasight backfill {keys[0]}..{keys[-1]}")
    target = ["-w", workspace] if workspace else ["-m", MODULE]
    launched = graphql(target, LAUNCH, {"params": params}).get("launchPartitionBackfill") or {}
    if launched.get("__typename") != "LaunchBackfillSuccess":
        detail = launched.get("message") or launched
        raise click.ClickException(f"the backfill was not created: {detail}")
    backfill_id = launched["backfillId"]
    chunks = -(-len(keys) // PARTITIONS_PER_RUN)
    click.echo(f"backfill {backfill_id}: {len(keys)} trading day(s) {keys[0]}..{keys[-1]} × {len(assets)} asset(s), "
               f"runs of ≤ {PARTITIONS_PER_RUN} days ({chunks} range(s) per lineage layer); the daemon executes it "
               f"— UI: /runs/b/{backfill_id}")
    if wait:
        _wait(backfill_id)


def _wait(backfill_id: str, poll_s: float = 5.0) -> None:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.get() as instance:
        status = None
        while True:
            status = instance.get_backfill(backfill_id).status.value
            if status in FINISHED:
                break
            time.sleep(poll_s)
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
        ok = sum(r.status == DagsterRunStatus.SUCCESS for r in runs)
        click.echo(f"backfill {backfill_id} {status}: {ok}/{len(runs)} run(s) succeeded")
        if status != "COMPLETED_SUCCESS" or ok != len(runs):
            sys.exit(1)
