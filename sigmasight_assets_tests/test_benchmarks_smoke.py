"""Smoke test of the benchmark suite (``python -m benchmarks.run``) at a tiny size.

Runs the real runner — setup, workloads 3 (a backfill through a real dagster-daemon), 1, 2, 5 and 7
on SQLite, each in its own child process — into ``tmp_path`` and checks the results files and the
warehouse. The numbers themselves are not asserted (timings are measured by the benchmark, not by
tests).
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from benchmarks import run as bench
from benchmarks.generate import generate_ledger, summary
from sigmasight_assets import calendar
from sigmasight_assets.ledger import parse_ledger

WORKLOADS = {"w3_backfill", "w1_symbol_partition", "w2_portfolio_partition", "w5_portfolio_reads", "w7_large_book"}


def test_runner_at_tiny_size_reports_every_workload_and_fills_the_warehouse(tmp_path):
    out_md, out_json, work = tmp_path / "results.md", tmp_path / "results.json", tmp_path / "work"
    code = bench.main(["--symbols", "20", "--portfolios", "10", "--positions", "25", "--days", "3", "--history", "31",
                       "--workloads", "1,2,3,5,7", "--database", "sqlite", "--reads", "20", "--large-portfolios", "30",
                       "--partitions-per-run", "2", "--daemon-poll-seconds", "1",
                       "--out", str(out_md), "--json", str(out_json), "--workdir", str(work)])
    report = json.loads(out_json.read_text())
    runs = {r["workload"]: r for r in report["runs"]}
    failed = {k: r.get("error_tail") for k, r in runs.items() if not r["ok"]}
    assert code == 0 and not failed, failed
    assert WORKLOADS <= set(runs)
    for name in WORKLOADS | {"setup_ledger", "setup_history"}:
        r = runs[name]
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["peak_rss_mb"] > 0, r
        assert r["database"] == "sqlite"
    assert report["scale"]["symbols"] == 20 and report["scale"]["portfolios"] == 10
    assert report["machine"]["cores"] and report["machine"]["dagster"]
    assert len(report["load_average_before"]) == 3 and len(report["load_average_after"]) == 3

    # Real Dagster runs: per-step durations, and the provider fetch is timed separately.
    w1 = runs["w1_symbol_partition"]["details"]
    assert set(w1["step_seconds"]) == set(bench_symbol_steps())
    assert w1["fetch_prices_calls"] >= 1 and w1["fetch_seconds"] > 0
    assert runs["w2_portfolio_partition"]["details"]["step_seconds"].keys() == {"portfolio_analytics", "risk_analytics"}
    w3 = runs["w3_backfill"]["details"]
    assert w3["partition_range"] == f"{report['dates']['range_start']}..{report['dates']['range_end']}"
    # Workload 3 was a backfill executed by the daemon as runs of at most 2 partitions (3 days: two
    # ranges per lineage layer), every run successful, and the provider calls made in the run workers
    # are still timed (through the fetch log).
    assert report["scale"]["w3_route"] == "daemon" and w3["backfill_status"] == "COMPLETED_SUCCESS"
    assert w3["run_count"] >= 4 and all(r["status"] == "SUCCESS" for r in w3["runs"])
    ranges = {r["range"] for r in w3["runs"]}
    assert all(len(calendar.sessions(*r.split(".."))) <= 2 for r in ranges), ranges
    # (an asset backfill also evaluates the selected assets' checks, among them the freshness check)
    assert set(w3["step_seconds"]) - {"nightly_partition_materialized"} == set(bench_symbol_steps()) | {"portfolio_analytics", "risk_analytics"}
    assert w3["fetch_prices_calls"] >= 1 and w3["fetch_valuations_calls"] >= 1 and w3["fetch_seconds"] > 0
    assert runs["w3_backfill"]["peak_rss_run_workers_mb"] > 0
    assert "workload 3 route: daemon" in out_md.read_text()
    assert runs["w7_large_book"]["details"]["step_seconds"].keys() == {"portfolio_analytics", "risk_analytics"}
    assert runs["w5_portfolio_reads"]["details"]["empty_lookups"] == 0

    # The warehouse was populated by the runs.
    db = work / "pipeline_sqlite" / "warehouse.sqlite"
    with sqlite3.connect(db) as conn:
        count = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        assert count("SELECT count(*) FROM portfolios") == 30  # the large book replaced the first one
        assert count("SELECT count(DISTINCT date) FROM prices") == 31 + 3 + 1
        assert count("SELECT count(DISTINCT symbol) FROM prices") >= 20 + 8
        for table in ("symbol_betas", "ridge_factors", "symbol_metrics", "portfolio_snapshots", "correlations",
                      "aggregated_exposures", "stress_results", "portfolio_risk", "var_backtest"):
            assert count(f"SELECT count(DISTINCT date) FROM {table}") == 3 + 1, table
        assert count("SELECT count(*) FROM portfolio_snapshots") == 10 * 3 + 30  # the range, then the large book

    md = out_md.read_text()
    for label in ("1. one partition", "2. one partition", "3. whole graph", "5. one portfolio"):
        assert label in md


def bench_symbol_steps():
    from benchmarks.workloads import SYMBOL_ASSETS

    return SYMBOL_ASSETS


def test_generated_ledger_is_valid_for_the_loader(tmp_path):
    from benchmarks.generate import write_csv

    ledger = generate_ledger(40, 30, 25, "2025-09-02", "2025-10-31", "2025-12-31")
    s = summary(ledger)
    assert s["portfolios"] == 40 and s["positions"] == 40 * 25
    assert s["symbols_held"] == 30  # every symbol is held
    assert s["short_positions"] > 0
    positions, flows = write_csv(ledger, tmp_path)
    parsed = parse_ledger(positions, flows)  # raises on any invalid row
    assert len(parsed.positions) == len(ledger.positions)
    assert len(parsed.capital_flows) == 40
    assert ledger.positions["entry_date"].max() <= pd.Timestamp("2025-10-31")
    assert ledger.positions["expiration"].dropna().min() > pd.Timestamp("2025-12-31")
    again = generate_ledger(40, 30, 25, "2025-09-02", "2025-10-31", "2025-12-31")
    assert again.positions.equals(ledger.positions)  # deterministic


def test_quick_and_full_defaults():
    full = bench.parse_args([])
    assert (full.symbols, full.portfolios, full.positions, full.days) == (5000, 10000, 25, 252)
    assert full.large_portfolios == 100_000 and full.w3_route == "daemon"
    quick = bench.parse_args(["--quick", "--days", "20"])
    assert (quick.symbols, quick.portfolios, quick.days) == (500, 1000, 20)
