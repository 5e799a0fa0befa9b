"""The Dagster UI's API end to end: a real ``dagster-webserver`` and ``dagster-daemon`` on this code
location, driven through ``POST /graphql`` exactly as the UI drives it.

* the asset graph the UI draws — keys, groups, lineage (DESIGN.md §3) with the lookback windows as
  partition mappings, kinds, owners, descriptions, column schemas, checks, the job;
* the three backfill routes of the README, executed by the daemon with the repository's
  ``dagster.yaml`` (queued runs, two at a time) and two partitions per run
  (``SIGMASIGHT_PARTITIONS_PER_RUN=2``, so three days already need several runs):
  per-asset ranges (what ``sigmasight backfill`` submits) — runs of at most two days ordered along
  the lineage, every asset exactly the days asked; the ``daily_risk_graph`` job's backfill — runs of
  the whole graph over exactly the days, one after another in date order; the asset graph's
  partition dialog (``partitionNames``) — Dagster adds the later days that read the chosen ones
  through a look-back window, and the backfill still finishes; and ``sigmasight backfill`` itself.
  Materialisations and check results are read back through GraphQL and checked against the
  warehouse.

The daemon is ``dagster-daemon run`` with its backfill loop iterating every few seconds instead of
Dagster's fixed 30 s (``ui_helpers.daemon_command``) and the run queue polled every second
(``ui_helpers.install_repo_dagster_yaml``), so the tests do not spend their time waiting for the
next iteration.

Everything runs in a temporary ``DAGSTER_HOME`` (the repository's dagster.yaml) with a temporary
SQLite warehouse loaded by ``sigmasight load-portfolios --sample``. The code location's sensors are switched off
through the API before the daemon starts (as an operator would in the UI), so the daemon runs the
backfill and nothing else. Every process started here is ended, with its process group, at the end.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from sigmasight_assets.warehouse import Warehouse

from . import ui_helpers as ui

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

DAYS = ["2026-11-16", "2026-11-17", "2026-11-18"]
BACKFILL_TIMEOUT_S = 600
PER_RUN = 2
# Checks that judge the wall clock rather than the run's data (is the latest nightly partition there?),
# which a backfill of past days cannot pass.
WALL_CLOCK_CHECKS = {"nightly_partition_materialized"}
GROUPS = {
    "market_data": {"symbol_universe", "prices", "symbol_returns", "daily_valuations"},
    "symbol_analytics": {"symbol_betas", "ridge_factors", "spread_factors", "factor_model", "factor_covariance",
                         "replay_window_returns", "symbol_metrics"},
    "portfolio_analytics": {"portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results",
                            "portfolio_risk", "risk_contributions", "var_backtest"},
}
# Upstream keys of each asset as the UI shows them. DESIGN.md §3's table, plus the edges the code
# declares on purpose: symbol-level assets also read their day's symbol_universe (which symbols to
# compute), return-based assets read symbol_returns (point-in-time total returns), stress reads the
# joint factor_model loadings and the replay windows.
LINEAGE = {
    "portfolios": set(),
    "symbol_universe": {"portfolios"},
    "prices": {"symbol_universe"},
    "symbol_returns": {"prices"},
    "daily_valuations": {"prices", "symbol_universe"},
    "symbol_betas": {"symbol_returns", "daily_valuations", "symbol_universe"},
    "ridge_factors": {"symbol_returns", "symbol_universe"},
    "spread_factors": {"symbol_returns", "symbol_universe"},
    "factor_model": {"symbol_returns", "symbol_universe"},
    "factor_covariance": {"symbol_returns"},
    "replay_window_returns": {"symbol_returns"},
    "symbol_metrics": {"prices", "symbol_returns", "daily_valuations", "symbol_betas", "ridge_factors",
                       "spread_factors", "symbol_universe"},
    "portfolio_snapshots": {"portfolios", "prices", "symbol_returns"},
    "correlations": {"portfolios", "symbol_returns", "portfolio_snapshots"},
    "aggregated_exposures": {"symbol_betas", "ridge_factors", "spread_factors", "portfolio_snapshots"},
    "stress_results": {"factor_model", "factor_covariance", "portfolio_snapshots", "replay_window_returns"},
    "portfolio_risk": {"factor_model", "factor_covariance", "portfolio_snapshots", "prices", "symbol_returns"},
    "risk_contributions": {"factor_model", "factor_covariance", "portfolio_snapshots", "prices", "symbol_returns"},
    "var_backtest": {"portfolio_risk"},
}
DESIGN_EDGES = {  # DESIGN.md §3, "depends on" column: must always be present
    "symbol_universe": {"portfolios"}, "prices": {"symbol_universe"}, "symbol_returns": {"prices"},
    "daily_valuations": {"prices"}, "symbol_betas": {"symbol_returns", "daily_valuations"},
    "ridge_factors": {"symbol_returns"}, "spread_factors": {"symbol_returns"}, "factor_model": {"symbol_returns"},
    "factor_covariance": {"symbol_returns"}, "portfolio_snapshots": {"portfolios", "prices"},
    "correlations": {"portfolios", "portfolio_snapshots"},
    "aggregated_exposures": {"symbol_betas", "ridge_factors", "spread_factors", "portfolio_snapshots"},
    "stress_results": {"factor_model", "factor_covariance", "portfolio_snapshots"},
    "portfolio_risk": {"factor_model", "factor_covariance", "portfolio_snapshots"},
    "risk_contributions": {"factor_model", "factor_covariance", "portfolio_snapshots"},
    "var_backtest": {"portfolio_risk"},
}
# Look-back windows declared as TimeWindowPartitionMapping(start_offset=-N) on an edge: day D of
# symbol_betas reads symbol_returns D-89..D (90 returns), symbol_returns reads prices D-1..D.
WINDOWS = {
    ("symbol_returns", "prices"): -1, ("daily_valuations", "prices"): -251,
    ("symbol_betas", "symbol_returns"): -89, ("ridge_factors", "symbol_returns"): -89,
    ("spread_factors", "symbol_returns"): -179, ("factor_model", "symbol_returns"): -89,
    ("factor_covariance", "symbol_returns"): -251, ("replay_window_returns", "symbol_returns"): -194,
    ("symbol_metrics", "symbol_returns"): -251, ("portfolio_snapshots", "prices"): -6,
    ("portfolio_snapshots", "symbol_returns"): -89, ("correlations", "symbol_returns"): -89,
    ("portfolio_risk", "prices"): -7, ("portfolio_risk", "symbol_returns"): -250, ("portfolio_risk", "factor_model"): -1,
    ("risk_contributions", "prices"): -7, ("risk_contributions", "symbol_returns"): -250,
    ("risk_contributions", "factor_model"): -1, ("var_backtest", "portfolio_risk"): -250,
}

ASSET_GRAPH_QUERY = """
{ assetNodes {
    assetKey { path } groupName description isPartitioned isObservable kinds
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    backfillPolicy { policyType maxPartitionsPerRun }
    partitionDefinition { type description }
    dependencyKeys { path }
    dependencies { asset { assetKey { path } } partitionMapping { className description } }
    metadataEntries { __typename label
      ... on TableSchemaMetadataEntry { schema { columns { name type } } }
      ... on TextMetadataEntry { text } }
    assetChecksOrError { __typename ... on AssetChecks { checks { name description } } }
} }
"""

REPOSITORY_QUERY = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name }
    jobs { name description isAssetJob }
    sensors { name sensorState { id status } }
    schedules { name scheduleState { id status } } } } } }
"""

STOP_SENSOR = """
mutation($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }
"""
STOP_SCHEDULE = """
mutation($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack }
  ... on PartitionKeysNotFoundError { message }
  ... on UnauthorizedError { message } } }
"""

BACKFILL_QUERY = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status error { message }
      runs { runId status startTime endTime assetSelection { path } tags { key value } } }
  ... on PythonError { message } } }
"""

MATERIALISATIONS_QUERY = """
query($keys: [AssetKeyInput!], $partitions: [String!]) { assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetMaterializations(partitions: $partitions) { partition runId
      metadataEntries { __typename label ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } } }
    assetPartitionStatuses { __typename ... on TimePartitionStatuses { ranges { startKey endKey status } } }
    assetChecksOrError { ... on AssetChecks { checks { name
        executionForLatestMaterialization { runId status evaluation { severity success } } } } }
} }
"""


class UI:
    def __init__(self, url, warehouse_url, web, daemon, timings, env):
        self.url, self.warehouse_url, self.web, self.daemon, self.timings = url, warehouse_url, web, daemon, timings
        self.env = env

    def q(self, query, variables=None):
        return ui.graphql(self.url, query, variables)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    base = tmp_path_factory.mktemp("dagster_ui")
    home = ui.make_dagster_home(base / "dagster_home")
    ui.install_repo_dagster_yaml(home)  # queued runs, two at a time
    ui.init_instance(home)
    warehouse_url = f"sqlite:///{base / 'warehouse.sqlite'}"
    env = ui.dagster_env(home, warehouse_url, SIGMASIGHT_PARTITIONS_PER_RUN=str(PER_RUN))
    timings = {}
    started = time.monotonic()
    out = ui.load_sample_portfolios(env)
    assert "loaded 4 portfolio(s)" in out
    procs: list[ui.DagsterProcess] = []
    try:
        web, url = ui.start_webserver(home, env, base)
        procs.append(web)
        timings["webserver_ready_s"] = ui.wait_for_webserver(url, web)
        # The code location's sensors would react to the freshly loaded book with history runs of
        # their own; switch every running sensor and schedule off first, as an operator would in the UI.
        repo = ui.graphql(url, REPOSITORY_QUERY)["repositoriesOrError"]["nodes"][0]
        for sensor in repo["sensors"]:
            if sensor["sensorState"]["status"] == "RUNNING":
                res = ui.graphql(url, STOP_SENSOR, {"id": sensor["sensorState"]["id"]})["stopSensor"]
                assert res["__typename"] == "StopSensorMutationResult", res
        for schedule in repo["schedules"]:
            if schedule["scheduleState"]["status"] == "RUNNING":
                res = ui.graphql(url, STOP_SCHEDULE, {"id": schedule["scheduleState"]["id"]})["stopRunningSchedule"]
                assert res["__typename"] == "ScheduleStateResult", res
        daemon = ui.start_daemon(env, base)
        procs.append(daemon)
        timings["setup_s"] = time.monotonic() - started
        yield UI(url, warehouse_url, web, daemon, timings, env)
    finally:
        survivors = {p.name: p.stop() for p in procs}
        assert not any(survivors.values()), f"processes left running: {survivors}"


def _key(node) -> str:
    return "/".join(node["assetKey"]["path"])


def _wait_for_backfill(dagster_ui, backfill_id: str, timing: str) -> dict:
    """Poll the backfill (bounded) until the daemon has finished it; it must have succeeded."""
    started = time.monotonic()
    backfill = None
    while time.monotonic() - started < BACKFILL_TIMEOUT_S:
        backfill = dagster_ui.q(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        for proc in (dagster_ui.web, dagster_ui.daemon):
            assert proc.alive, f"{proc.name} died:\n{proc.tail()}"
        time.sleep(2)
    elapsed = time.monotonic() - started
    dagster_ui.timings[timing] = elapsed
    assert backfill["status"] == "COMPLETED_SUCCESS", (
        f"backfill {backfill['status']} after {elapsed:.0f}s: {backfill}\n--- daemon log ---\n{dagster_ui.daemon.tail()}")
    return backfill


def _assert_only_backfill_runs(dagster_ui) -> None:
    runs = dagster_ui.q("{ runsOrError { ... on Runs { results { runId tags { key value } } } } }")["runsOrError"]["results"]
    strays = [r["runId"] for r in runs if "dagster/backfill" not in {t["key"] for t in r["tags"]}]
    assert not strays, f"the daemon launched runs that belong to no backfill: {strays}"


def test_asset_graph_as_the_ui_shows_it(dagster_ui):
    nodes = {_key(n): n for n in dagster_ui.q(ASSET_GRAPH_QUERY)["assetNodes"]}
    assert set(nodes) == set(ui.PARTITIONED_ASSETS) | set(ui.SOURCE_ASSETS)

    # Groups
    for group, keys in GROUPS.items():
        assert {k for k, n in nodes.items() if n["groupName"] == group} - set(ui.SOURCE_ASSETS) == keys, group
    assert nodes["portfolios"]["groupName"] == "ledger"  # the ledger source, apart from the market data

    # Lineage: DESIGN.md §3 edges always, and exactly the documented set.
    deps = {k: {"/".join(d["path"]) for d in n["dependencyKeys"]} for k, n in nodes.items()}
    for asset, upstream in DESIGN_EDGES.items():
        assert upstream <= deps[asset], f"{asset} lacks DESIGN.md §3 upstream {upstream - deps[asset]}"
    assert deps == LINEAGE

    # Windows are lineage: day D of e.g. symbol_betas reads symbol_returns D-89..D.
    for (asset, parent), offset in WINDOWS.items():
        (edge,) = [d for d in nodes[asset]["dependencies"] if d["asset"]["assetKey"]["path"] == [parent]]
        mapping = edge["partitionMapping"]
        assert mapping and mapping["className"] == "TimeWindowPartitionMapping", (asset, mapping)
        assert f"offsetted by {offset} and 0 partitions" in mapping["description"], (asset, mapping)

    # Every partitioned asset: the shared daily partitions, one run per backfill, and what a person
    # needs on the asset page.
    for key in ui.PARTITIONED_ASSETS:
        n = nodes[key]
        assert n["isPartitioned"] and n["partitionDefinition"]["type"] == "TIME_WINDOW", key
        assert "Daily" in n["partitionDefinition"]["description"] and "America/New_York" in n["partitionDefinition"]["description"]
        assert n["backfillPolicy"] == {"policyType": "MULTI_RUN", "maxPartitionsPerRun": PER_RUN}, key
        assert len(n["description"] or "") >= 100, f"{key}: description too short to say meaning, grain and window"
        assert n["kinds"] and "sql" in n["kinds"], key
        assert {"__typename": "TeamAssetOwner", "team": "risk-platform"} in n["owners"], key
        meta = {m["label"]: m for m in n["metadataEntries"]}
        schema = meta.get("dagster/column_schema")
        assert schema and schema["__typename"] == "TableSchemaMetadataEntry", key
        columns = [c["name"] for c in schema["schema"]["columns"]]
        key_column = "factor_1" if key == "factor_covariance" else ("symbol" if n["groupName"] != "portfolio_analytics"
                                                                    else "portfolio_id")
        assert columns[:2] == ["date", key_column], (key, columns)
        assert "×" in meta["grain"]["text"], key
        checks = n["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks" and checks["checks"], f"{key} has no asset checks"
        for check in checks["checks"]:
            assert check["description"], f"{key}:{check['name']} has no description"
    assert nodes["portfolios"]["isObservable"] and not nodes["portfolios"]["isPartitioned"]
    assert nodes["portfolios"]["description"]

    # The job the UI lists for the whole graph, with a readable description.
    repo = dagster_ui.q(REPOSITORY_QUERY)["repositoriesOrError"]["nodes"][0]
    assert repo["location"]["name"] == "sigmasight_assets"
    jobs = {j["name"]: j for j in repo["jobs"]}
    assert jobs["daily_risk_graph"]["isAssetJob"] and jobs["daily_risk_graph"]["description"]


def test_portfolios_source_has_owner_and_kind(dagster_ui):
    (node,) = [n for n in dagster_ui.q(ASSET_GRAPH_QUERY)["assetNodes"] if _key(n) == "portfolios"]
    assert node["owners"] and node["kinds"]


LAUNCHPAD_QUERY = """
query($sel: PipelineSelector!) { runConfigSchemaOrError(selector: $sel) { __typename
  ... on RunConfigSchema { rootDefaultYaml } } }
"""


def test_the_launchpad_and_the_ledger_source_show_no_placeholders(dagster_ui):
    """The job's Launchpad opens with no placeholder values (seed -1, empty spec or url), and the ledger
    source reads as observed (load-portfolios records an observation), in its own group."""
    repo = dagster_ui.q(REPOSITORY_QUERY)["repositoriesOrError"]["nodes"][0]
    sel = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
           "pipelineName": "daily_risk_graph"}
    res = dagster_ui.q(LAUNCHPAD_QUERY, {"sel": sel})["runConfigSchemaOrError"]
    assert res["__typename"] == "RunConfigSchema", res
    default = res["rootDefaultYaml"]
    for placeholder in ("seed: -1", "spec: ''", "url: ''", "symbols: null", "portfolio_ids: null"):
        assert placeholder not in default, default
    job = next(j for j in repo["jobs"] if j["name"] == "daily_risk_graph")
    assert "exactly those days" in job["description"]
    obs = dagster_ui.q("""{ assetOrError(assetKey: {path: ["portfolios"]}) { ... on Asset {
        assetObservations(limit: 1) { metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }""")
    [latest] = obs["assetOrError"]["assetObservations"]
    assert {e["label"]: e.get("intValue") for e in latest["metadataEntries"]}["portfolios"] == 4


def _run_days(run) -> list[str]:
    from sigmasight_assets import calendar

    tags = {t["key"]: t["value"] for t in run["tags"]}
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]
    return [d.date().isoformat() for d in calendar.sessions(start, end)]


def _assert_lineage_order(runs) -> None:
    """A run of an asset starts only after the runs of its upstream assets over the days it reads."""
    by_asset = {}
    for run in runs:
        for a in run["assetSelection"]:
            by_asset.setdefault(a["path"][0], []).append(run)
    for run in runs:
        assets = {a["path"][0] for a in run["assetSelection"]}
        for asset in assets:
            for parent in LINEAGE[asset] - assets - set(ui.SOURCE_ASSETS):
                for prior in by_asset.get(parent, []):
                    if set(_run_days(prior)) & set(_run_days(run)):
                        assert prior["endTime"] <= run["startTime"], (asset, parent)


def test_per_asset_range_backfill_runs_in_bounded_runs_over_exactly_the_days(dagster_ui):
    keys = [{"path": [k]} for k in ui.PARTITIONED_ASSETS]
    params = {
        "title": "3-day backfill from the GraphQL API",
        # One range per asset: what `sigmasight backfill` (and the UI's per-asset dialog) sends.
        "partitionsByAssets": [{"assetKey": k, "partitions": {"range": {"start": DAYS[0], "end": DAYS[-1]}}}
                               for k in keys],
    }
    launched = dagster_ui.q(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    backfill = _wait_for_backfill(dagster_ui, backfill_id, "backfill_s")

    # Runs of at most PER_RUN days, all successful, ordered along the lineage; together they cover
    # every asset on exactly the three days.
    runs = backfill["runs"]
    assert len(runs) >= 2 and all(r["status"] == "SUCCESS" for r in runs)
    covered = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/backfill"] == backfill_id
        days = _run_days(run)
        assert 1 <= len(days) <= PER_RUN, days
        for a in run["assetSelection"]:
            covered.setdefault(a["path"][0], []).extend(days)
    assert {k: sorted(v) for k, v in covered.items()} == {k: DAYS for k in ui.PARTITIONED_ASSETS}
    _assert_lineage_order(runs)
    _assert_only_backfill_runs(dagster_ui)

    # Materialisations, partition status and checks as the asset pages show them.
    wh = Warehouse(dagster_ui.warehouse_url)
    nodes = dagster_ui.q(MATERIALISATIONS_QUERY, {"keys": keys, "partitions": DAYS})["assetNodes"]
    assert {_key(n) for n in nodes} == set(ui.PARTITIONED_ASSETS)
    run_ids = {r["runId"] for r in runs}
    for n in nodes:
        key = _key(n)
        mats = n["assetMaterializations"]
        assert sorted(m["partition"] for m in mats) == DAYS, key
        assert {m["runId"] for m in mats} <= run_ids, key
        total_rows = sum(max(e["intValue"] for e in m["metadataEntries"] if e["label"] == "rows")
                         for m in {m["runId"]: m for m in mats}.values())
        # The rows shown on the asset page (one figure per run, for its range) add up to the warehouse's.
        assert total_rows == wh.count(key, DAYS[0], DAYS[-1]), key
        meta = {e["label"]: e for e in mats[0]["metadataEntries"]}
        # Three days of prices from scratch are fewer than the 30 returns a regression or a covariance
        # needs: those assets write nothing and count what they skipped (no silent zero).
        if key == "factor_covariance":
            assert total_rows == 0 and meta["days_without_matrix"]["intValue"] >= 1
        elif key in ("ridge_factors", "spread_factors", "factor_model"):
            assert total_rows == 0 and meta["symbol_days_skipped"]["intValue"] > 0, key
        elif key == "replay_window_returns":
            assert total_rows == 0, key  # no shipped replay window ends on these days
        elif key == "risk_contributions":  # no factor model yet: no volatility to split (counted on portfolio_risk)
            assert total_rows == 0, key
        else:
            assert total_rows > 0, key
        ranges = n["assetPartitionStatuses"]["ranges"]
        assert [(r["startKey"], r["endKey"], r["status"]) for r in ranges] == [(DAYS[0], DAYS[-1], "MATERIALIZED")], key
        for check in n["assetChecksOrError"]["checks"]:
            ex = check["executionForLatestMaterialization"]
            if ex is None or ex["runId"] not in run_ids or check["name"] in WALL_CLOCK_CHECKS:
                continue
            assert ex["status"] in ("SUCCEEDED", "FAILED"), (key, check)
            if ex["status"] == "FAILED":  # a short range may warn (coverage, short history), never error
                assert ex["evaluation"]["severity"] == "WARN", (key, check)

    # The warehouse holds exactly the three days — nothing spilled into later partitions.
    for table, per_day in (("portfolio_snapshots", 4), ("correlations", 4)):
        frame = wh.read(table)
        assert sorted(str(d.date()) for d in frame["date"].unique()) == DAYS, table
        assert frame.groupby("date").size().eq(per_day).all(), table
    prices = wh.read("prices")
    assert sorted(str(d.date()) for d in prices["date"].unique()) == DAYS
    for etf in ("SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"):
        assert (prices["symbol"] == etf).sum() == 3, etf
    stress = wh.read("stress_results")
    assert stress.groupby(["date", "portfolio_id"]).size().eq(24).all() and len(stress) == 3 * 4 * 24
    wh.engine.dispose()
    print(f"timings: {dagster_ui.timings}")


def test_job_backfill_is_runs_of_the_whole_graph_over_exactly_the_days_one_after_another(dagster_ui):
    """Jobs → daily_risk_graph → Backfill: the job's partition set; runs of at most PER_RUN days of
    the whole graph, executed one at a time in date order (the `sigmasight/serial` run queue limit),
    so each range's look-back windows read what the range before stored."""
    days = ["2026-11-09", "2026-11-10", "2026-11-11"]
    params = {
        "selector": {"partitionSetName": "daily_risk_graph_partition_set",
                     "repositorySelector": {"repositoryName": "__repository__",
                                            "repositoryLocationName": "sigmasight_assets"}},
        "partitionNames": days,
    }
    launched = dagster_ui.q(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = _wait_for_backfill(dagster_ui, launched["backfillId"], "job_backfill_s")
    runs = sorted(backfill["runs"], key=lambda r: r["startTime"])
    assert [_run_days(r) for r in runs] == [days[:2], days[2:]]
    assert all(r["status"] == "SUCCESS" for r in runs)
    assert runs[0]["endTime"] <= runs[1]["startTime"]  # one after the other, in date order
    _assert_only_backfill_runs(dagster_ui)

    keys = [{"path": [k]} for k in ui.PARTITIONED_ASSETS]
    nodes = dagster_ui.q(MATERIALISATIONS_QUERY, {"keys": keys, "partitions": days})["assetNodes"]
    for n in nodes:
        assert sorted(m["partition"] for m in n["assetMaterializations"]) == days, _key(n)
        ranges = [(r["startKey"], r["endKey"]) for r in n["assetPartitionStatuses"]["ranges"] if r["status"] == "MATERIALIZED"]
        assert (days[0], days[-1]) in ranges and all(end <= "2026-11-18" for _, end in ranges), (_key(n), ranges)
    wh = Warehouse(dagster_ui.warehouse_url)
    snaps = wh.read("portfolio_snapshots", days[0], "2026-11-13")
    assert sorted(str(d.date()) for d in snaps["date"].unique()) == days  # nothing spilled into 11-12, 11-13
    wh.engine.dispose()
    print(f"timings: {dagster_ui.timings}")


def test_asset_graph_route_adds_the_days_that_read_the_chosen_ones_and_finishes(dagster_ui):
    """Asset graph → Materialize → partitions (``partitionNames``): Dagster targets the chosen days of
    the root asset and, downstream, later days whose look-back windows read them (its breadth-first
    walk of the lineage, up to the last partition: which assets get them depends on the walk's
    order). Chosen at the end of the partitions, that is a few days at most; the backfill finishes."""
    from sigmasight_assets.defs.partitions import trading_days

    last = trading_days.get_last_partition_key()
    keys = trading_days.get_partition_keys()
    chosen = keys[-3:-1]  # two days before the last partition
    params = {"assetSelection": [{"path": [k]} for k in ui.PARTITIONED_ASSETS], "partitionNames": chosen}
    launched = dagster_ui.q(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = _wait_for_backfill(dagster_ui, launched["backfillId"], "asset_graph_backfill_s")
    runs = backfill["runs"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs)
    covered = {}
    for run in runs:
        assert len(_run_days(run)) <= PER_RUN
        for a in run["assetSelection"]:
            covered.setdefault(a["path"][0], set()).update(_run_days(run))
    assert covered["symbol_universe"] == set(chosen)  # the root: exactly the chosen days
    for asset in ui.PARTITIONED_ASSETS:  # the chosen days, and perhaps later ones up to the last partition
        assert set(chosen) <= covered[asset] <= {*chosen, *[k for k in keys if k > chosen[-1] and k <= last]}, asset
    _assert_lineage_order(runs)


def test_cli_backfill_submits_to_the_daemon_and_waits_for_it(dagster_ui):
    days = ["2026-11-19", "2026-11-20"]
    cmd = [ui.executable("sigmasight"), "backfill", "--from", days[0], "--to", days[-1], "--wait",
           "--workspace", str(ui.WORKSPACE)]
    started = time.monotonic()
    out = subprocess.run(cmd, env=dagster_ui.env, cwd=ui.REPO_ROOT, capture_output=True, text=True,
                         timeout=BACKFILL_TIMEOUT_S)
    dagster_ui.timings["cli_backfill_s"] = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    assert "COMPLETED_SUCCESS" in out.stdout and f"runs of ≤ {PER_RUN} days" in out.stdout
    wh = Warehouse(dagster_ui.warehouse_url)
    assert sorted(str(d.date()) for d in wh.read("portfolio_snapshots", days[0], days[-1])["date"].unique()) == days
    wh.engine.dispose()
    print(f"timings: {dagster_ui.timings}")
