"""The Dagster UI's API end to end: a real ``dagster-webserver`` and ``dagster-daemon`` on this code
location, driven through ``POST /graphql`` exactly as the UI drives it.

* the asset graph the UI draws — keys, groups, lineage (DESIGN.md §3) with the lookback windows as
  partition mappings, kinds, owners, descriptions, column schemas, checks, the job;
* a partition backfill of three trading days launched with ``launchPartitionBackfill`` (per-asset
  ranges), executed by the daemon as **one** run (``BackfillPolicy.single_run()``), its
  materialisations and check results read back through GraphQL and checked against the warehouse.

Everything runs in a temporary ``DAGSTER_HOME`` (telemetry off) with a temporary SQLite warehouse
loaded by ``sigmasight load-portfolios --sample``. The code location's sensors are switched off
through the API before the daemon starts (as an operator would in the UI), so the daemon runs the
backfill and nothing else. Every process started here is ended, with its process group, at the end.
"""

from __future__ import annotations

import time

import pytest

from sigmasight_assets.warehouse import Warehouse

from . import ui_helpers as ui

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAYS = ["2026-11-16", "2026-11-17", "2026-11-18"]
BACKFILL_TIMEOUT_S = 240
# Checks that judge the wall clock rather than the run's data (is the latest nightly partition there?),
# which a backfill of past days cannot pass.
WALL_CLOCK_CHECKS = {"nightly_partition_materialized"}
GROUPS = {
    "market_data": {"symbol_universe", "prices", "daily_valuations"},
    "symbol_analytics": {"symbol_betas", "ridge_factors", "spread_factors", "factor_covariance", "symbol_metrics"},
    "portfolio_analytics": {"portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results"},
}
# Upstream keys of each asset as the UI shows them. DESIGN.md §3's table, plus the edges the code
# declares on purpose: symbol-level assets also read their day's symbol_universe (which symbols to
# compute), and stress_results reads position-level betas (symbol_betas, ridge_factors) besides
# aggregated_exposures (DESIGN: "aggregated_exposures (or position-level betas)").
LINEAGE = {
    "portfolios": set(),
    "symbol_universe": {"portfolios"},
    "prices": {"symbol_universe"},
    "daily_valuations": {"prices", "symbol_universe"},
    "symbol_betas": {"prices", "daily_valuations", "symbol_universe"},
    "ridge_factors": {"prices", "symbol_universe"},
    "spread_factors": {"prices", "symbol_universe"},
    "factor_covariance": {"prices"},
    "symbol_metrics": {"prices", "daily_valuations", "symbol_betas", "ridge_factors", "spread_factors",
                       "symbol_universe"},
    "portfolio_snapshots": {"portfolios", "prices"},
    "correlations": {"portfolios", "prices", "portfolio_snapshots"},
    "aggregated_exposures": {"symbol_betas", "ridge_factors", "spread_factors", "portfolio_snapshots"},
    "stress_results": {"factor_covariance", "portfolio_snapshots", "aggregated_exposures", "symbol_betas",
                       "ridge_factors"},
}
DESIGN_EDGES = {  # DESIGN.md §3, "depends on" column: must always be present
    "symbol_universe": {"portfolios"}, "prices": {"symbol_universe"}, "daily_valuations": {"prices"},
    "symbol_betas": {"prices", "daily_valuations"}, "ridge_factors": {"prices"}, "spread_factors": {"prices"},
    "factor_covariance": {"prices"}, "portfolio_snapshots": {"portfolios", "prices"},
    "correlations": {"portfolios", "prices", "portfolio_snapshots"},
    "aggregated_exposures": {"symbol_betas", "ridge_factors", "spread_factors", "portfolio_snapshots"},
    "stress_results": {"factor_covariance", "portfolio_snapshots", "aggregated_exposures"},
}
# Lookback windows declared as TimeWindowPartitionMapping(start_offset=-N) on the prices edge.
PRICE_WINDOWS = {"daily_valuations": -251, "symbol_betas": -90, "ridge_factors": -90, "spread_factors": -180,
                 "factor_covariance": -252, "symbol_metrics": -252, "portfolio_snapshots": -90, "correlations": -90}

ASSET_GRAPH_QUERY = """
{ assetNodes {
    assetKey { path } groupName description isPartitioned isObservable kinds
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    backfillPolicy { policyType }
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
      runs { runId status assetSelection { path } tags { key value } } }
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
    def __init__(self, url, warehouse_url, web, daemon, timings):
        self.url, self.warehouse_url, self.web, self.daemon, self.timings = url, warehouse_url, web, daemon, timings

    def q(self, query, variables=None):
        return ui.graphql(self.url, query, variables)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    base = tmp_path_factory.mktemp("dagster_ui")
    home = ui.make_dagster_home(base / "dagster_home")
    ui.init_instance(home)
    warehouse_url = f"sqlite:///{base / 'warehouse.sqlite'}"
    env = ui.dagster_env(home, warehouse_url)
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
        yield UI(url, warehouse_url, web, daemon, timings)
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
    assert nodes["portfolios"]["groupName"] in GROUPS

    # Lineage: DESIGN.md §3 edges always, and exactly the documented set.
    deps = {k: {"/".join(d["path"]) for d in n["dependencyKeys"]} for k, n in nodes.items()}
    for asset, upstream in DESIGN_EDGES.items():
        assert upstream <= deps[asset], f"{asset} lacks DESIGN.md §3 upstream {upstream - deps[asset]}"
    assert deps == LINEAGE

    # Windows are lineage: day D of e.g. symbol_betas reads prices D-90..D.
    for asset, offset in PRICE_WINDOWS.items():
        (edge,) = [d for d in nodes[asset]["dependencies"] if d["asset"]["assetKey"]["path"] == ["prices"]]
        mapping = edge["partitionMapping"]
        assert mapping and mapping["className"] == "TimeWindowPartitionMapping", (asset, mapping)
        assert f"offsetted by {offset} and 0 partitions" in mapping["description"], (asset, mapping)

    # Every partitioned asset: the shared daily partitions, one run per backfill, and what a person
    # needs on the asset page.
    for key in ui.PARTITIONED_ASSETS:
        n = nodes[key]
        assert n["isPartitioned"] and n["partitionDefinition"]["type"] == "TIME_WINDOW", key
        assert "Daily" in n["partitionDefinition"]["description"] and "America/New_York" in n["partitionDefinition"]["description"]
        assert n["backfillPolicy"] == {"policyType": "SINGLE_RUN"}, key
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


def test_partition_backfill_runs_once_and_fills_the_warehouse(dagster_ui):
    keys = [{"path": [k]} for k in ui.PARTITIONED_ASSETS]
    params = {
        "title": "3-day backfill from the GraphQL API",
        # One range per asset (what the UI's partition-range dialog sends per asset). The run executes
        # its steps in one process: the default multiprocess executor would start one Python process
        # per step, which is the slow part of a short run, not what this test is about.
        "partitionsByAssets": [{"assetKey": k, "partitions": {"range": {"start": DAYS[0], "end": DAYS[-1]}}}
                               for k in keys],
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
    }
    launched = dagster_ui.q(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    backfill = _wait_for_backfill(dagster_ui, backfill_id, "backfill_s")

    # One run for the whole range and every asset (single_run backfill policy), with range tags.
    (run,) = backfill["runs"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert tags["dagster/backfill"] == backfill_id
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (DAYS[0], DAYS[-1])
    assert {p["path"][0] for p in run["assetSelection"]} == set(ui.PARTITIONED_ASSETS)
    _assert_only_backfill_runs(dagster_ui)

    # Materialisations, partition status and checks as the asset pages show them.
    wh = Warehouse(dagster_ui.warehouse_url)
    nodes = dagster_ui.q(MATERIALISATIONS_QUERY, {"keys": keys, "partitions": DAYS})["assetNodes"]
    assert {_key(n) for n in nodes} == set(ui.PARTITIONED_ASSETS)
    for n in nodes:
        key = _key(n)
        mats = n["assetMaterializations"]
        assert sorted(m["partition"] for m in mats) == DAYS, key
        assert {m["runId"] for m in mats} == {run["runId"]}, key
        meta = {e["label"]: e for e in mats[0]["metadataEntries"]}
        assert meta["partition_range"]["text"] == f"{DAYS[0]}..{DAYS[-1]}", key
        assert meta["partitions"]["intValue"] == 3, key
        # The row count shown on the asset page is the warehouse's for the range.
        assert meta["rows"]["intValue"] == wh.count(key, DAYS[0], DAYS[-1]), key
        # Three days of prices from scratch are fewer than the 30 returns a regression or a covariance
        # needs: those assets write nothing and count what they skipped (no silent zero).
        if key == "factor_covariance":
            assert meta["rows"]["intValue"] == 0 and meta["days_without_matrix"]["intValue"] == 3
        elif key in ("ridge_factors", "spread_factors"):
            assert meta["rows"]["intValue"] == 0 and meta["symbol_days_skipped"]["intValue"] > 0, key
        else:
            assert meta["rows"]["intValue"] > 0, key
        ranges = n["assetPartitionStatuses"]["ranges"]
        assert [(r["startKey"], r["endKey"], r["status"]) for r in ranges] == [(DAYS[0], DAYS[-1], "MATERIALIZED")], key
        for check in n["assetChecksOrError"]["checks"]:
            ex = check["executionForLatestMaterialization"]
            if ex is None or ex["runId"] != run["runId"] or check["name"] in WALL_CLOCK_CHECKS:
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
    assert stress.groupby(["date", "portfolio_id"]).size().eq(19).all() and len(stress) == 3 * 4 * 19
    wh.engine.dispose()
    print(f"timings: {dagster_ui.timings}")


def test_job_partition_backfill_is_one_run_over_exactly_the_range(dagster_ui):
    """Jobs → daily_risk_graph → Backfill: the job's partition set, one run with range tags.

    (The asset graph's Materialize → partition range dialog launches an *asset* backfill with
    ``partitionNames`` instead; Dagster then extends the downstream targets through the lookback
    windows' partition mappings up to the last partition and splits the work into several runs.)
    """
    days = ["2026-11-09", "2026-11-10", "2026-11-11"]
    params = {
        "selector": {"partitionSetName": "daily_risk_graph_partition_set",
                     "repositorySelector": {"repositoryName": "__repository__",
                                            "repositoryLocationName": "sigmasight_assets"}},
        "partitionNames": days,
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
    }
    launched = dagster_ui.q(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = _wait_for_backfill(dagster_ui, launched["backfillId"], "job_backfill_s")
    (run,) = backfill["runs"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (days[0], days[-1])
    _assert_only_backfill_runs(dagster_ui)

    keys = [{"path": [k]} for k in ui.PARTITIONED_ASSETS]
    nodes = dagster_ui.q(MATERIALISATIONS_QUERY, {"keys": keys, "partitions": days})["assetNodes"]
    for n in nodes:
        assert sorted(m["partition"] for m in n["assetMaterializations"]) == days, _key(n)
        assert {m["runId"] for m in n["assetMaterializations"]} == {run["runId"]}, _key(n)
        ranges = [(r["startKey"], r["endKey"]) for r in n["assetPartitionStatuses"]["ranges"] if r["status"] == "MATERIALIZED"]
        assert (days[0], days[-1]) in ranges and all(end <= "2026-11-18" for _, end in ranges), (_key(n), ranges)
    wh = Warehouse(dagster_ui.warehouse_url)
    snaps = wh.read("portfolio_snapshots", days[0], "2026-11-13")
    assert sorted(str(d.date()) for d in snaps["date"].unique()) == days  # nothing spilled into 11-12, 11-13
    wh.engine.dispose()
    print(f"timings: {dagster_ui.timings}")
