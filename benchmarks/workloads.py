"""One benchmark workload per process: ``python -m benchmarks.workloads NAME PARAMS.json``.

``benchmarks.run`` starts each workload in a fresh child process (so its wall time, CPU time and
peak RSS are the child's own) with ``DAGSTER_HOME`` and ``SIGMASIGHT_DATABASE_URL`` set, and reads
the JSON the workload writes to ``params["result_path"]``: in-process timings (the Dagster run's
wall time, per-step durations from the run's STEP_SUCCESS events, time spent inside the market-data
provider, rows written per asset, read latencies, rows/s).

The pipeline workloads go through the real code paths, on the persistent instance in ``DAGSTER_HOME``
with the ``WarehouseResource`` and a ``MarketDataResource`` whose provider is wrapped only to time its
fetch calls (``job_defs``): workload 3 is a backfill launched as a user launches it — ``sigmasight
backfill`` submits it to the instance and a real ``dagster-daemon`` (started by the workload, in its
process group) executes it as queued runs of at most ``SIGMASIGHT_PARTITIONS_PER_RUN`` partitions
(``--w3-route in_process`` runs ``materialize_range`` instead, one in-process run); the setup and the
one-partition workloads use ``materialize_range`` (one in-process run).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SYMBOL_ASSETS = ["symbol_universe", "prices", "symbol_returns", "daily_valuations", "symbol_betas", "ridge_factors",
                 "spread_factors", "factor_model", "factor_covariance", "replay_window_returns", "symbol_metrics"]
PORTFOLIO_ASSETS = ["portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results",
                    "portfolio_risk", "risk_contributions", "var_backtest"]

def _cpu() -> float:
    """CPU seconds (user + sys) so far of this process (all threads) and of its finished children
    (step processes and portfolio worker processes, reaped when they end)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_summary(result) -> dict:
    """Per-step durations and rows written per asset, from the run's events."""
    steps = {}
    for ev in result.get_step_success_events():
        steps[ev.step_key] = round(ev.event_specific_data.duration_ms / 1000.0, 3)
    # A single-run backfill emits one materialization per partition, each carrying the run's metadata
    # (``rows`` = rows written by the whole run), so take the value, not the sum over events.
    rows = {}
    for ev in result.get_asset_materialization_events():
        mat = ev.step_materialization_data.materialization
        key = mat.asset_key.to_user_string()
        value = mat.metadata.get("rows")
        if value is not None:
            rows[key] = max(rows.get(key, 0), int(value.value))
    return {"run_id": result.run_id, "success": bool(result.success), "step_seconds": steps, "rows_written": rows,
            "dagster_events": len(result.all_events)}


def _fetch_log(params: dict) -> Path:
    """A fresh provider-timing log for this workload (see ``job_defs.TimedProvider``)."""
    from .job_defs import FETCH_LOG_ENV

    path = Path(params["result_path"]).with_suffix(".fetch.jsonl")
    if path.exists():
        path.unlink()
    os.environ[FETCH_LOG_ENV] = str(path)  # inherited by step processes
    return path


def _materialize(params: dict, start: str, end: str, selection: list[str] | None) -> dict:
    """``materialize_range``: the in-process executor, every step in this process."""
    from dagster import DagsterInstance

    from sigmasight_assets.local_runs import materialize_range

    from .job_defs import resources

    log = _fetch_log(params)
    with DagsterInstance.get() as instance:
        t0, c0 = time.perf_counter(), _cpu()
        result = materialize_range(start, end, instance=instance, selection=selection,
                                   resources=resources(params["db_url"], params.get("market_seed", 7)))
        run_s, run_cpu = time.perf_counter() - t0, _cpu() - c0
        summary = _run_summary(result)
    return _timings(start, end, run_s, run_cpu, summary, log, "in_process")


def _daemon_backfill(params: dict, start: str, end: str) -> dict:
    """``sigmasight backfill`` of [start, end] on this instance, executed by a ``dagster-daemon`` started
    here (its code server and run workers share this process group, so the runner's RSS samples
    cover every process of the runs)."""
    import shutil
    import signal
    import subprocess

    from dagster import DagsterInstance, RunsFilter

    from .job_defs import write_workspace

    log = _fetch_log(params)
    home = Path(os.environ["DAGSTER_HOME"])
    repo = Path(__file__).resolve().parent.parent
    shutil.copy(Path(params.get("dagster_yaml") or repo / "dagster.yaml"), home / "dagster.yaml")
    poll = int(params.get("daemon_poll_s") or 0)
    if poll:  # smoke runs only (--daemon-poll-seconds): the run queue polled every `poll` s, not 5 s
        with open(home / "dagster.yaml", "a") as fh:
            fh.write("\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
                     f"  config:\n    dequeue_interval_seconds: {poll}\n")
    os.environ["SIGMASIGHT_DATABASE_URL"] = params["db_url"]
    os.environ["SIGMASIGHT_SYNTHETIC_SEED"] = str(params.get("market_seed", 7))
    if params.get("partitions_per_run"):
        os.environ["SIGMASIGHT_PARTITIONS_PER_RUN"] = str(params["partitions_per_run"])
    code_dir = Path.cwd()
    workspace = write_workspace(Path(params["workdir"]) / "workspace_bench.yaml", code_dir)
    bin_dir = Path(sys.executable).parent
    with DagsterInstance.get() as instance:  # create the instance storage before the daemon races for it
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    daemon_log = Path(params["workdir"]) / "logs" / "w3_daemon.log"
    daemon_log.parent.mkdir(parents=True, exist_ok=True)
    daemon_cmd = [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)]
    if poll:
        # and the same daemon with its backfill loop's fixed 30 s pause (a module constant of Dagster's,
        # not configurable) lowered to 3 × `poll` s.
        daemon_cmd[:1] = [sys.executable, "-c",
                          "import sys; import dagster._daemon.controller as c; "
                          f"c.DEFAULT_DAEMON_INTERVAL_SECONDS = {3 * poll}; "
                          "from dagster._daemon.cli import main; sys.argv[0] = 'dagster-daemon'; sys.exit(main())"]
    daemon = subprocess.Popen(daemon_cmd, stdout=daemon_log.open("w"), stderr=subprocess.STDOUT, cwd=code_dir)
    try:
        t0, c0 = time.perf_counter(), _cpu()
        out = subprocess.run([str(bin_dir / "sigmasight"), "backfill", "--from", start, "--to", end,
                              "--workspace", str(workspace)], capture_output=True, text=True, cwd=code_dir,
                             check=True).stdout
        backfill_id = out.split("backfill ", 1)[1].split(":", 1)[0]
        submitted = time.perf_counter() - t0
        timeout = float(params.get("w3_timeout_s") or 6 * 3600)
        with DagsterInstance.get() as instance:
            status = None
            while time.perf_counter() - t0 < timeout:
                status = instance.get_backfill(backfill_id).status.value
                if status not in ("REQUESTED", "CANCELING", "FAILING"):
                    break
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}); see {daemon_log}")
                time.sleep(2.0)
            run_s = time.perf_counter() - t0
            runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
            summary = _backfill_summary(instance, runs)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    run_cpu = _cpu() - c0
    if status != "COMPLETED_SUCCESS" or summary["runs_failed"]:
        raise RuntimeError(f"backfill {backfill_id} ended {status} with {summary['runs_failed']} failed run(s)")
    out = _timings(start, end, run_s, run_cpu, summary, log, "daemon backfill (queued runs)")
    from sigmasight_assets.defs.common import DEFAULT_PARTITIONS_PER_RUN

    # the setting the daemon and the runs were started with (this process imported the code before)
    per_run = int(os.environ.get("SIGMASIGHT_PARTITIONS_PER_RUN") or DEFAULT_PARTITIONS_PER_RUN)
    out.update({"backfill_id": backfill_id, "submit_seconds": round(submitted, 3), "backfill_status": status,
                "partitions_per_run": per_run})
    return out


def _backfill_summary(instance, runs) -> dict:
    """Runs of a backfill: their ranges and assets, wall times, step seconds summed over runs, rows
    written per asset (each run's metadata covers its range: summed over runs) and events."""
    from dagster import DagsterEventType, DagsterRunStatus

    steps: dict[str, float] = {}
    rows: dict[str, int] = {}
    per_run = []
    events = 0
    for run in runs:
        rec = instance.get_run_record_by_id(run.run_id)
        run_rows: dict[str, int] = {}
        for entry in instance.all_logs(run.run_id):
            events += 1
            ev = entry.dagster_event
            if ev is None:
                continue
            if ev.event_type == DagsterEventType.STEP_SUCCESS:
                steps[ev.step_key] = steps.get(ev.step_key, 0.0) + ev.event_specific_data.duration_ms / 1000.0
            elif ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                mat = ev.step_materialization_data.materialization
                value = mat.metadata.get("rows")
                if value is not None:
                    key = mat.asset_key.to_user_string()
                    run_rows[key] = max(run_rows.get(key, 0), int(value.value))
        for k, v in run_rows.items():
            rows[k] = rows.get(k, 0) + v
        per_run.append({
            "run_id": run.run_id, "status": run.status.value,
            "range": f"{run.tags.get('dagster/asset_partition_range_start')}..{run.tags.get('dagster/asset_partition_range_end')}",
            "assets": sorted(k.to_user_string() for k in (run.asset_selection or [])),
            "seconds": round((rec.end_time or 0) - (rec.start_time or 0), 2) if rec and rec.start_time else None,
            "start": rec.start_time if rec else None,
        })
    per_run.sort(key=lambda r: r["start"] or 0)
    return {"step_seconds": {k: round(v, 3) for k, v in steps.items()}, "rows_written": rows,
            "dagster_events": events, "runs": per_run, "run_count": len(runs),
            "runs_failed": sum(r.status != DagsterRunStatus.SUCCESS for r in runs), "success": True}


def _timings(start: str, end: str, run_s: float, run_cpu: float, summary: dict, log: Path, executor: str) -> dict:
    from .job_defs import fetch_totals

    fetch = fetch_totals(log)
    out = {"partition_range": f"{start}..{end}", "executor": executor, "run_seconds": round(run_s, 3),
           "run_cpu_seconds": round(run_cpu, 3), **summary,
           **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in fetch.items()}}
    out["fetch_seconds"] = round(fetch["fetch_prices_s"] + fetch["fetch_valuations_s"], 3)
    out["run_seconds_excluding_fetch"] = round(run_s - out["fetch_seconds"], 3)
    out["run_cpu_seconds_excluding_fetch"] = round(run_cpu - fetch["fetch_cpu_s"], 3)
    return out


# -- workloads ---------------------------------------------------------------------------------------
def setup_ledger(params: dict) -> dict:
    """Generate the benchmark ledger and store it (sigmasight_assets.warehouse.ledger.store_ledger)."""
    from sigmasight_assets.warehouse import Warehouse
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .generate import generate_ledger, summary, write_csv

    d = params["dates"]
    t0 = time.perf_counter()
    ledger = generate_ledger(params["portfolios"], params["symbols"], params["positions"], d["entry_start"],
                             d["entry_end"], d["range_end"], seed=params["seed"], market_seed=params["market_seed"])
    gen_s = time.perf_counter() - t0
    csv_dir = Path(params["workdir"]) / "ledger"
    write_csv(ledger, csv_dir)
    wh = Warehouse(params["db_url"])
    wh.create_all()
    t0 = time.perf_counter()
    counts = store_ledger(wh, ledger)
    store_s = time.perf_counter() - t0
    return {"generate_seconds": round(gen_s, 3), "store_seconds": round(store_s, 3), "stored": counts,
            "ledger": summary(ledger), "csv": str(csv_dir)}


def setup_history(params: dict) -> dict:
    """symbol_universe + prices + symbol_returns over the history sessions before the first measured partition."""
    d = params["dates"]
    return _materialize(params, d["history_start"], d["history_end"], ["symbol_universe", "prices", "symbol_returns"])


def w3_backfill(params: dict) -> dict:
    """The whole graph over the benchmark range as a backfill through the daemon (or, with
    ``w3_route = in_process``, as one in-process run)."""
    d = params["dates"]
    if params.get("w3_route", "daemon") == "in_process":
        return _materialize(params, d["range_start"], d["range_end"], None)
    return _daemon_backfill(params, d["range_start"], d["range_end"])


def w1_symbol_partition(params: dict) -> dict:
    """One partition (the session after the range) of every symbol-level asset."""
    d = params["dates"]
    return _materialize(params, d["next_day"], d["next_day"], SYMBOL_ASSETS)


def w2_portfolio_partition(params: dict) -> dict:
    """One partition (the session after the range) of every portfolio-level asset (portfolio_analytics and
    risk_analytics)."""
    d = params["dates"]
    return _materialize(params, d["next_day"], d["next_day"], PORTFOLIO_ASSETS)


def w5_portfolio_reads(params: dict) -> dict:
    """Latest snapshot, exposures, stress results and risk of one portfolio, for random portfolios."""
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(params["db_url"])
    ids = wh.read("portfolios", columns=["portfolio_id"])["portfolio_id"].to_numpy()
    rng = np.random.default_rng(params["seed"])
    n = int(params.get("reads", 200))
    sample = rng.choice(ids, size=n, replace=len(ids) < n)
    warmup = 5

    def lookup(pid):
        t = [time.perf_counter()]
        day = wh.query("SELECT max(date) AS d FROM portfolio_snapshots WHERE portfolio_id = :p", p=pid)["d"].iloc[0]
        t.append(time.perf_counter())
        snap = wh.read("portfolio_snapshots", day, day, keys=[pid])
        t.append(time.perf_counter())
        expo = wh.read("aggregated_exposures", day, day, keys=[pid])
        t.append(time.perf_counter())
        stress = wh.read("stress_results", day, day, keys=[pid])
        t.append(time.perf_counter())
        risk = wh.read("portfolio_risk", day, day, keys=[pid])
        t.append(time.perf_counter())
        return np.diff(t), (len(snap), len(expo), len(stress), len(risk))

    for pid in sample[:warmup]:
        lookup(pid)
    parts, rows = [], []
    for pid in sample:
        dt, r = lookup(pid)
        parts.append(dt)
        rows.append(r)
    parts = np.array(parts) * 1000.0
    total = parts.sum(axis=1)
    names = ["latest_date", "snapshot", "exposures", "stress", "risk"]

    def stats(x):
        return {"median_ms": round(float(np.median(x)), 3), "p95_ms": round(float(np.percentile(x, 95)), 3),
                "max_ms": round(float(np.max(x)), 3), "mean_ms": round(float(np.mean(x)), 3)}

    rows = np.array(rows)
    return {"portfolios_sampled": n, "portfolios_in_warehouse": len(ids), "warmup_lookups": warmup,
            "total": stats(total), "parts": {k: stats(parts[:, i]) for i, k in enumerate(names)},
            "rows_per_lookup": {"snapshot": float(rows[:, 0].mean()), "exposures": float(rows[:, 1].mean()),
                                "stress": float(rows[:, 2].mean()), "risk": float(rows[:, 3].mean())},
            "empty_lookups": int((rows[:, 0] == 0).sum())}


def footprint(params: dict) -> dict:
    """Bytes per table and per index of the warehouse as the workloads before left it
    (``benchmarks.footprint``)."""
    from .footprint import measure

    return measure(params["db_url"])


def setup_large_book(params: dict) -> dict:
    """Replace the ledger with ``large_portfolios`` generated portfolios (workload 7's book)."""
    from sigmasight_assets.warehouse import Warehouse
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .generate import generate_ledger, summary

    d = params["dates"]
    t0 = time.perf_counter()
    ledger = generate_ledger(params["large_portfolios"], params["symbols"], params["positions"], d["entry_start"],
                             d["entry_end"], d["range_end"], seed=params["seed"] + 1, market_seed=params["market_seed"])
    gen_s = time.perf_counter() - t0
    wh = Warehouse(params["db_url"])
    wh.create_all()
    t0 = time.perf_counter()
    with wh.engine.begin() as conn:
        for t in ("capital_flows", "positions", "portfolios"):
            conn.exec_driver_sql(f"DELETE FROM {t}")
    counts = store_ledger(wh, ledger)
    return {"generate_seconds": round(gen_s, 3), "store_seconds": round(time.perf_counter() - t0, 3),
            "stored": counts, "ledger": summary(ledger)}


def w7_large_book(params: dict) -> dict:
    """One partition (the session after the range) of the portfolio assets for the large book."""
    d = params["dates"]
    return _materialize(params, d["next_day"], d["next_day"], PORTFOLIO_ASSETS)


def w4_regression(params: dict) -> dict:
    """benchmarks/bench_regression.py at the benchmark's symbol count (its own random data)."""
    from . import bench_regression

    out = Path(params["workdir"]) / "results_regression_run.json"
    if out.exists():
        out.unlink()
    argv = ["--symbols", str(params["symbols"]), "--range-days", "0", "--output", str(out)]
    rc = bench_regression.main(argv)
    record = json.loads(out.read_text())[-1]
    record["exit_code"] = rc
    return record


def _io_frames(params: dict, shape: str) -> tuple[str, pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """A prices-shaped or ridge_factors-shaped frame: (symbols + 8 ETFs) × range sessions (× 6 factors)."""
    from sigmasight_assets import calendar
    from sigmasight_assets.calc.factors import FACTOR_ETFS

    from .generate import symbol_names

    d = params["dates"]
    sess = calendar.sessions(d["range_start"], d["range_end"])
    symbols = np.array(symbol_names(params["symbols"]) + list(FACTOR_ETFS), dtype=object)
    rng = np.random.default_rng(1)
    if shape == "prices":
        n = len(sess) * len(symbols)
        close = np.round(rng.uniform(5, 500, n), 4)
        frame = pd.DataFrame({
            "date": np.repeat(sess.to_numpy(), len(symbols)),
            "symbol": np.tile(symbols, len(sess)),
            "open": np.round(close * rng.uniform(0.98, 1.02, n), 4),
            "high": np.round(close * 1.01, 4),
            "low": np.round(close * 0.99, 4),
            "close": close,
            "adj_close": np.round(close * 0.995, 4),
            "volume": np.round(rng.uniform(1e5, 1e8, n)),
            "source": "synthetic",
        })
        return "prices", frame, sess[0], sess[-1]
    factors = np.array(["value", "growth", "momentum", "quality", "size", "low_volatility"], dtype=object)
    per_day = len(symbols) * len(factors)
    n = len(sess) * per_day
    raw = rng.normal(0, 1.2, n)
    frame = pd.DataFrame({
        "date": np.repeat(sess.to_numpy(), per_day),
        "symbol": np.tile(np.repeat(symbols, len(factors)), len(sess)),
        "factor": np.tile(factors, len(sess) * len(symbols)),
        "beta": np.clip(raw, -5, 5),
        "raw_beta": raw,
        "capped": np.abs(raw) > 5,
        "ridge_penalty": 1.0,
        "r_squared": rng.uniform(0, 1, n),
        "std_error": np.nan,
        "p_value": np.nan,
        "observations": np.full(n, 90, dtype=np.int64),
    })
    return "ridge_factors", frame, sess[0], sess[-1]


def w6_io(params: dict) -> dict:
    """replace_partitions then read of one table shape on a throwaway database."""
    from sigmasight_assets.warehouse import Warehouse

    backend, shape = params["io_backend"], params["io_shape"]
    t0 = time.perf_counter()
    table, frame, start, end = _io_frames(params, shape)
    gen_s = time.perf_counter() - t0
    url, cleanup = _throwaway_db(params, backend, shape)
    try:
        wh = Warehouse(url)
        wh.create_all()
        t0 = time.perf_counter()
        written = wh.replace_partitions(table, frame, start, end)
        write_s = time.perf_counter() - t0
        n = len(frame)
        del frame
        t0 = time.perf_counter()
        back = wh.read(table, start, end)
        read_s = time.perf_counter() - t0
        n_read = len(back)
        del back
        size = None
        if backend == "sqlite":
            size = sum(p.stat().st_size for p in Path(url.split("///", 1)[1]).parent.glob(Path(url).name + "*"))
        else:
            size = int(wh.query("SELECT pg_total_relation_size(:t) AS s", t=table)["s"].iloc[0])
        wh.engine.dispose()
    finally:
        cleanup()
    return {"backend": backend, "table": table, "rows": n, "rows_read": n_read, "generate_seconds": round(gen_s, 3),
            "write_seconds": round(write_s, 3), "read_seconds": round(read_s, 3),
            "write_rows_per_s": round(written / write_s), "read_rows_per_s": round(n_read / read_s),
            "table_bytes": size}


def _throwaway_db(params: dict, backend: str, shape: str):
    if backend == "sqlite":
        path = Path(params["workdir"]) / f"io_{shape}.sqlite"
        for p in path.parent.glob(path.name + "*"):
            p.unlink()

        def cleanup():
            for p in path.parent.glob(path.name + "*"):
                p.unlink()

        return f"sqlite:///{path}", cleanup
    from .pg import create_database, drop_database

    name = f"sigmasight_bench_io_{shape}_{os.getpid()}"
    url = create_database(params["pg_url"], name)
    return url, lambda: drop_database(params["pg_url"], name)


WORKLOADS = {
    "setup_ledger": setup_ledger,
    "setup_history": setup_history,
    "w3_backfill": w3_backfill,
    "w1_symbol_partition": w1_symbol_partition,
    "w2_portfolio_partition": w2_portfolio_partition,
    "w5_portfolio_reads": w5_portfolio_reads,
    "footprint": footprint,
    "setup_large_book": setup_large_book,
    "w7_large_book": w7_large_book,
    "w4_regression": w4_regression,
    "w6_io": w6_io,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, params_path = argv[0], Path(argv[1])
    params = json.loads(params_path.read_text())
    t0 = time.perf_counter()
    out = WORKLOADS[name](params)
    out["workload_seconds"] = round(time.perf_counter() - t0, 3)
    Path(params["result_path"]).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, default=str)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
