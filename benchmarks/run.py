"""The benchmark suite: ``python -m benchmarks.run`` (full scale) or ``--quick`` (a few minutes).

Sets up a synthetic market and a generated book of portfolios, then runs each workload in a fresh
child process (``benchmarks.workloads``) and measures the child's wall time, CPU time (user + sys)
and peak RSS (``ru_maxrss``, and the sum over the child's process group sampled twice a second)
with ``os.wait4``. Order: setup (ledger, price history) → 3 (a year of the whole graph as a backfill
through the Dagster daemon: queued runs) → 1 (one partition of the symbol assets, the session after
the range) → 2 (one partition of the portfolio assets) → 5 (portfolio reads) → 7 (one partition of
the portfolio assets for a book of 100,000 portfolios) → 4 (vectorised vs per-symbol regressions) →
6 (warehouse bulk I/O on SQLite and PostgreSQL). Results: a markdown table (``--out``) and JSON
(``--json``) with the scale, the machine, load averages and the date. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
MB = 1024.0  # ru_maxrss is in KiB on Linux

CHILD_CWD = REPO  # where children start (``python -m`` puts it first on sys.path); see --code-ref
FULL = dict(symbols=5000, portfolios=10000, positions=25, days=252, large_portfolios=100_000)
QUICK = dict(symbols=500, portfolios=1000, positions=25, days=30, large_portfolios=5_000)

# DESIGN §8 (seconds; the reads in milliseconds, judged on p95).
SYMBOL_PARTITION_S, PORTFOLIO_PARTITION_S, READ_P95_MS = 10.0, 30.0, 10.0
TARGETS = {
    "w1_symbol_partition": f"≤ {SYMBOL_PARTITION_S:g} s excluding provider fetch (warehouse read+write included)",
    "w2_portfolio_partition": f"≤ {PORTFOLIO_PARTITION_S:g} s (every portfolio-level asset, risk included)",
    "w3_backfill": "≤ 20 min wall, peak RSS ≤ 4 GB",
    "w7_large_book": "≤ 5 min, peak RSS ≤ 4 GB",
    "w4_regression": "≥ 100× faster, max difference ≤ 1e-10",
    "w5_portfolio_reads": f"p95 ≤ {READ_P95_MS:g} ms per portfolio",
}
LABELS = {
    "setup_ledger": "setup: generate + store the ledger",
    "setup_history": "setup: price history (symbol_universe + prices + symbol_returns)",
    "w3_backfill": "3. whole graph, backfill through the daemon",
    "w1_symbol_partition": "1. one partition, symbol-level assets",
    "w2_portfolio_partition": "2. one partition, portfolio assets",
    "w5_portfolio_reads": "5. one portfolio's latest snapshot + exposures + stress",
    "w4_regression": "4. vectorised vs per-symbol statsmodels/sklearn",
    "w6_io": "6. warehouse bulk write + read",
    "setup_large_book": "setup: generate + store the large book (not measured)",
    "w7_large_book": "7. one partition, portfolio assets, large book",
    "prep_symbol_partition": "prep: symbol assets of the next session (not measured)",
    "prep_portfolio_partition": "prep: portfolio assets of the next session (not measured)",
    "footprint": "footprint: bytes per table and index after workload 3 (benchmarks.footprint)",
}


# -- machine ------------------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for mod in ("dagster", "numpy", "pandas", "sqlalchemy", "scipy", "psycopg"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # not installed
            versions[mod] = None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sigmasight_assets"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        head, dirty = None, ""
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        **versions,
        "git_head": head,
        "sigmasight_assets_uncommitted_changes": bool(dirty),
    }


# -- dates --------------------------------------------------------------------------------------------
def plan_dates(end: str, days: int, history: int, entry_window: int, backfill_selected: bool) -> dict:
    from sigmasight_assets import calendar

    rng = calendar.sessions_back(pd.Timestamp(end), days)
    if len(rng) < days:
        raise SystemExit(f"not enough sessions before {end}")
    nxt = calendar.sessions(rng[-1] + pd.Timedelta(days=1), rng[-1] + pd.Timedelta(days=15))[0]
    if nxt > pd.Timestamp.today().normalize():
        raise SystemExit(f"the session after the range ({nxt.date()}) is in the future: choose an earlier --end")
    hist = calendar.sessions_back(calendar.previous_session(rng[0]), history)
    entry = hist[-min(entry_window, len(hist)):]
    iso = lambda t: t.date().isoformat()  # noqa: E731
    return {
        "history_start": iso(hist[0]),
        # Without workload 3 the range itself is loaded as history, so workload 1 has its windows.
        "history_end": iso(hist[-1] if backfill_selected else rng[-1]),
        "history_sessions": len(hist) if backfill_selected else len(hist) + len(rng),
        "entry_start": iso(entry[0]),
        "entry_end": iso(entry[-1]),
        "range_start": iso(rng[0]),
        "range_end": iso(rng[-1]),
        "range_sessions": len(rng),
        "next_day": iso(nxt),
    }


# -- child processes ----------------------------------------------------------------------------------
def _pyspy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def _group_rss_kb(pgid: int) -> tuple[int, int]:
    """Resident set of every process in process group ``pgid`` (the child, and for workload 3 the
    daemon, its code server and the run workers), and of the run workers alone, in KiB."""
    total = runs = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            kb = int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            total += kb
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            # a run worker: `dagster api execute_run`, or the code server's multiprocessing child
            if b"execute_run" in cmdline or b"multiprocessing-fork" in cmdline:
                runs += kb
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total, runs


def run_child(name: str, params: dict, env: dict, run_dir: Path, tag: str, timeout_s: float | None,
              cprofile: bool = False, pyspy: bool = False) -> dict:
    params_dir, results_dir, logs_dir = (run_dir / d for d in ("params", "results", "logs"))
    for d in (params_dir, results_dir, logs_dir):
        d.mkdir(parents=True, exist_ok=True)
    result_path = results_dir / f"{tag}.json"
    if result_path.exists():
        result_path.unlink()
    params = {**params, "result_path": str(result_path)}
    params_path = params_dir / f"{tag}.json"
    params_path.write_text(json.dumps(params, indent=2))
    cmd = [sys.executable]
    prof_path = None
    if cprofile:
        prof_path = run_dir / f"profile_{tag}.prof"
        cmd += ["-m", "cProfile", "-o", str(prof_path)]
    cmd += ["-m", "benchmarks.workloads", name, str(params_path)]
    log_path = logs_dir / f"{tag}.log"
    load_before = os.getloadavg()
    started = dt.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=CHILD_CWD,
                                start_new_session=True)
        spy, spy_path = None, None
        if pyspy and _pyspy():
            # Attached from outside (not the child's parent) and non-blocking at a low rate, so the
            # child's own wall/CPU/RSS stay those of the workload.
            spy_path = run_dir / f"pyspy_{tag}.raw"
            spy = subprocess.Popen([_pyspy(), "record", "--pid", str(proc.pid), "--rate", "20", "--nonblocking",
                                    "--format", "raw", "-o", str(spy_path)],
                                   stdout=open(run_dir / "logs" / f"pyspy_{tag}.log", "w"), stderr=subprocess.STDOUT)
        tree_peak_kb, runs_peak_kb, next_sample = 0, 0, 0.0
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now >= next_sample:
                # ru_maxrss is the largest *single* process; with worker processes the workload's
                # footprint is the sum over its process group, sampled here twice a second.
                total_kb, runs_kb = _group_rss_kb(proc.pid)
                tree_peak_kb, runs_peak_kb = max(tree_peak_kb, total_kb), max(runs_peak_kb, runs_kb)
                next_sample = now + 0.5
            if timeout_s and time.perf_counter() - t0 > timeout_s and not timed_out:
                timed_out = True
                os.killpg(proc.pid, 9)  # the child's own process group (start_new_session)
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    if spy is not None:
        try:
            spy.wait(timeout=120)
        except subprocess.TimeoutExpired:
            spy.kill()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    out = {
        "workload": name,
        "tag": tag,
        "label": LABELS.get(name, name),
        "ok": code == 0 and result_path.exists(),
        "exit_code": code,
        "timed_out": timed_out,
        "started": started,
        "wall_s": round(wall, 2),
        "cpu_user_s": round(ru.ru_utime, 2),
        "cpu_sys_s": round(ru.ru_stime, 2),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mb": round(max(ru.ru_maxrss, tree_peak_kb) / MB, 1),
        "peak_rss_single_process_mb": round(ru.ru_maxrss / MB, 1),
        "peak_rss_process_group_mb": round(tree_peak_kb / MB, 1),
        "peak_rss_run_workers_mb": round(runs_peak_kb / MB, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "log": str(log_path),
        "profiled": bool(cprofile),
    }
    if result_path.exists():
        out["details"] = json.loads(result_path.read_text())
    else:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        out["error_tail"] = [line[:300] for line in text.splitlines()[-15:]]
        out["steps_from_log"] = steps_from_log(text)
    if spy_path is not None and spy_path.exists():
        from .profile_summary import summarise

        out["pyspy_profile"] = str(spy_path)
        txt = spy_path.with_suffix(".txt")
        txt.write_text(summarise(spy_path, top=40))
        out["pyspy_summary"] = str(txt)
    if prof_path is not None and prof_path.exists():
        out["profile"] = str(prof_path)
        out["profile_top"] = _profile_top(prof_path, run_dir / f"profile_{tag}.txt")
    return out


_STEP_DONE = re.compile(r'^(\S+ \S+) .*Finished execution of step "([^"]+)" in ([0-9hms.]+)\.?$')
_STEP_START = re.compile(r'^(\S+ \S+) .*Started execution of step "([^"]+)"')
MULTI_ASSET_TABLES = {
    "portfolio_analytics": ("portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results"),
    "risk_analytics": ("portfolio_risk", "risk_contributions", "var_backtest"),
}
_PROGRESS = re.compile(r"^(\S+ \S+) .*portfolio_analytics: (\S+) done \((\d+)/(\d+) days")


def _seconds(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)([hms])", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1}[unit]
    return round(total, 2)


def steps_from_log(text: str) -> dict:
    """Step durations and portfolio_analytics progress from a Dagster run log (for a failed or killed
    child, which wrote no result file): what finished, and what was running when it stopped."""
    done, started, progress = {}, {}, []
    for line in text.splitlines():
        if m := _STEP_DONE.match(line):
            done[m[2]] = _seconds(m[3])
        elif m := _STEP_START.match(line):
            started[m[2]] = m[1]
        elif m := _PROGRESS.match(line):
            progress.append({"time": m[1], "chunk": m[2], "days_done": int(m[3]), "days": int(m[4])})
    running = {k: v for k, v in started.items() if k not in done}
    return {"finished_steps_seconds": done, "running_steps_started_at": running,
            "portfolio_analytics_progress": progress}


def _profile_top(prof_path: Path, txt_path: Path, n: int = 40) -> str:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof_path), stream=buf)
    stats.sort_stats("cumulative").print_stats(n)
    buf.write("\n\n")
    stats.sort_stats("tottime").print_stats(n)
    txt_path.write_text(buf.getvalue())
    return str(txt_path)


# -- evaluation and reporting -------------------------------------------------------------------------
def evaluate(rec: dict) -> tuple[str, bool | None]:
    """(key numbers, meets target) of one child record."""
    d = rec.get("details") or {}
    name = rec["workload"]
    if not rec["ok"]:
        text = "FAILED" + (" (timed out)" if rec.get("timed_out") else f" (exit {rec['exit_code']})")
        if rec.get("failure_note"):
            text += f": {rec['failure_note']}"
        return text, False if name in TARGETS else None
    if name == "setup_ledger":
        s = d["stored"]
        return (f"{s['portfolios']:,} portfolios, {s['positions']:,} positions, {s['capital_flows']:,} flows; "
                f"generate {d['generate_seconds']:.1f} s, store {d['store_seconds']:.1f} s", None)
    if name == "setup_large_book":
        s = d["stored"]
        return (f"{s['portfolios']:,} portfolios, {s['positions']:,} positions; generate {d['generate_seconds']:.1f} s, "
                f"store {d['store_seconds']:.1f} s", None)
    if name in ("setup_history", "w3_backfill", "w1_symbol_partition", "w2_portfolio_partition",
                "prep_symbol_partition", "prep_portfolio_partition", "w7_large_book"):
        rows = sum(d.get("rows_written", {}).values())
        text = (f"run {d['run_seconds']:.1f} s wall / {d.get('run_cpu_seconds', float('nan')):.1f} s CPU; provider "
                f"fetch {d['fetch_seconds']:.1f} s; excl. fetch {d['run_seconds_excluding_fetch']:.1f} s wall / "
                f"{d.get('run_cpu_seconds_excluding_fetch', float('nan')):.1f} s CPU; {rows:,} rows written")
        if name == "w1_symbol_partition":
            rec["meets_target_on_cpu"] = d.get("run_cpu_seconds_excluding_fetch", float("inf")) <= SYMBOL_PARTITION_S
            return text, d["run_seconds_excluding_fetch"] <= SYMBOL_PARTITION_S
        if name == "w2_portfolio_partition":
            rec["meets_target_on_cpu"] = d.get("run_cpu_seconds", float("inf")) <= PORTFOLIO_PARTITION_S
            return text, d["run_seconds"] <= PORTFOLIO_PARTITION_S
        if name == "w3_backfill":
            # CPU seconds are no estimate of elapsed time once runs execute side by side.
            rec["meets_target_on_cpu"] = None
            if d.get("run_count"):
                text += (f"; {d['run_count']} runs of ≤ {d.get('partitions_per_run') or 'default'} partitions; "
                         f"peak RSS of the run workers {rec.get('peak_rss_run_workers_mb', 0):,.0f} MB")
            return text, d["run_seconds"] <= 20 * 60 and rec["peak_rss_mb"] <= 4096
        if name == "w7_large_book":
            rec["meets_target_on_cpu"] = d.get("run_cpu_seconds", float("inf")) <= 300.0 and rec["peak_rss_mb"] <= 4096
            return text, d["run_seconds"] <= 300.0 and rec["peak_rss_mb"] <= 4096
        return text, None
    if name == "footprint":
        return (f"{d['backend']}: {d['database_bytes'] / 1e6:,.1f} MB, {d.get('rows', 0):,} rows, "
                f"{d['database_bytes'] / max(d.get('rows', 0), 1):,.0f} B/row", None)
    if name == "w5_portfolio_reads":
        t = d["total"]
        return (f"median {t['median_ms']:.1f} ms, p95 {t['p95_ms']:.1f} ms, max {t['max_ms']:.1f} ms over "
                f"{d['portfolios_sampled']} portfolios", t["p95_ms"] <= READ_P95_MS)
    if name == "w4_regression":
        return (f"vectorised {d['vectorised_seconds']:.3f} s vs loop {d['loop_seconds']:.1f} s = "
                f"{d['speedup']:.0f}×; max abs difference {d['max_abs_difference']:.1e}",
                d["speedup"] >= 100 and d["max_abs_difference"] <= 1e-10)
    if name == "w6_io":
        return (f"{d['backend']} {d['table']} {d['rows']:,} rows: write {d['write_seconds']:.1f} s "
                f"({d['write_rows_per_s']:,} rows/s), read {d['read_seconds']:.1f} s ({d['read_rows_per_s']:,} rows/s)",
                None)
    return "", None


def _fmt_mark(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def write_reports(report: dict, md_path: Path, json_path: Path) -> None:
    for rec in report["runs"]:
        rec["summary"], rec["meets_target"] = evaluate(rec)
        rec["target"] = TARGETS.get(rec["workload"])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(report))


def render_markdown(report: dict) -> str:
    sc, m, dates = report["scale"], report["machine"], report["dates"]
    lines = [
        "# sigmasight_assets benchmark results",
        "",
        f"- date: {report['date']} (finished {report.get('finished', 'running')})",
        f"- command: `{report['command']}`",
        f"- scale: {sc['symbols']:,} symbols + 8 factor ETFs, {sc['portfolios']:,} portfolios × {sc['positions']} "
        f"positions, {sc['days']} partitions in the backfill (history {dates['history_sessions']} sessions before it)",
        f"- dates: history {dates['history_start']}..{dates['history_end']}, backfill {dates['range_start']}.."
        f"{dates['range_end']}, single partition {dates['next_day']}",
        f"- machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM; {m['platform']}",
        f"- software: Python {m['python']}, dagster {m['dagster']}, numpy {m['numpy']}, pandas {m['pandas']}, "
        f"SQLAlchemy {m['sqlalchemy']}; code: "
        + (m["code_ref"] if m.get("code_ref") else f"working tree at {m['git_head']}"
           + (" with uncommitted changes in sigmasight_assets/" if m.get("sigmasight_assets_uncommitted_changes") else "")),
        f"- load average (1/5/15 min) before: {report['load_average_before']}, after: {report.get('load_average_after')}",
        "- each row is one child process: wall = child elapsed time (interpreter start and imports included), "
        "CPU = user + sys of the child and its step and worker processes, peak RSS = the larger of the child's "
        "ru_maxrss and the sampled (every 0.5 s) sum of RSS over the child's process group (the child, its step "
        "processes and their workers)",
        f"- workload 3 route: {sc.get('w3_route', 'daemon')} ("
        + ("`sigmasight backfill` submitted to the instance, executed by a dagster-daemon as queued runs of at most "
           f"{sc.get('partitions_per_run') or 'the default number of'} partitions, side by side as dagster.yaml allows; "
           "peak RSS summed over the daemon, its code server and every run worker"
           if sc.get("w3_route", "daemon") == "daemon"
           else "materialize: one in-process run, every step in the run's process") + ")",
        "- 'meets (wall)' judges the target on elapsed time as measured (inflated when other jobs share the 2 "
        "cores: see the load averages); 'meets (CPU)' judges the same quantity on CPU seconds, an estimate "
        "of the elapsed time on an otherwise idle machine for the single-process workloads (not for workload 3, whose "
        "runs execute side by side)",
        "",
        "| workload | db | wall s | CPU s | peak RSS MB | result | target | meets (wall) | meets (CPU) |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for rec in report["runs"]:
        lines.append(
            f"| {rec['label']} | {rec.get('database', '')} | {rec['wall_s']:.1f} | {rec['cpu_s']:.1f} | "
            f"{rec['peak_rss_mb']:,.0f} | {rec.get('summary', '')} | {rec.get('target') or ''} | "
            f"{_fmt_mark(rec.get('meets_target'))} | {_fmt_mark(rec.get('meets_target_on_cpu'))} |"
        )
    for rec in report["runs"]:
        d = rec.get("details") or {}
        if d.get("step_seconds"):
            lines += ["", f"### {rec['label']} ({rec.get('database', '')}): Dagster steps", "",
                      f"Run {d['run_seconds']:.1f} s wall, {d.get('run_cpu_seconds', float('nan')):.1f} s CPU, "
                      f"{d.get('dagster_events', '?')} Dagster events; provider fetch {d['fetch_seconds']:.1f} s "
                      f"(fetch_prices {d['fetch_prices_s']:.1f} s in {d['fetch_prices_calls']} call(s), fetch_valuations "
                      f"{d['fetch_valuations_s']:.1f} s in {d['fetch_valuations_calls']} call(s)); partitions "
                      f"{d['partition_range']}.", "",
                      "| step | seconds | rows written |", "|---|---:|---:|"]
            rows = d.get("rows_written", {})
            for step, sec in sorted(d["step_seconds"].items(), key=lambda kv: -kv[1]):
                if step in MULTI_ASSET_TABLES:
                    written = ", ".join(f"{k} {v:,}" for k, v in rows.items() if k in MULTI_ASSET_TABLES[step])
                else:
                    written = f"{rows[step]:,}" if step in rows else ""
                lines.append(f"| {step} | {sec:.1f} | {written} |")
        if rec["workload"] == "w5_portfolio_reads" and d:
            lines += ["", f"### {rec['label']} ({rec.get('database', '')})", "",
                      "| part | median ms | p95 ms | max ms |", "|---|---:|---:|---:|"]
            for part, s in [("total", d["total"]), *d["parts"].items()]:
                lines.append(f"| {part} | {s['median_ms']:.2f} | {s['p95_ms']:.2f} | {s['max_ms']:.2f} |")
        if rec["workload"] == "footprint" and d:
            from .footprint import render

            lines += ["", f"### {rec['label']} ({rec.get('database', '')})", "", *render(d)]
    io_runs = [r for r in report["runs"] if r["workload"] == "w6_io" and r.get("details")]
    if io_runs:
        lines += ["", "### 6. warehouse I/O (Warehouse.replace_partitions / Warehouse.read)", "",
                  "| backend | table shape | rows | write s | write rows/s | read s | read rows/s | table size MB | peak RSS MB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in io_runs:
            d = r["details"]
            size = f"{d['table_bytes'] / 1e6:,.0f}" if d.get("table_bytes") else ""
            lines.append(f"| {d['backend']} | {d['table']} | {d['rows']:,} | {d['write_seconds']:.1f} | "
                         f"{d['write_rows_per_s']:,} | {d['read_seconds']:.1f} | {d['read_rows_per_s']:,} | {size} | "
                         f"{r['peak_rss_mb']:,.0f} |")
    for rec in report["runs"]:
        logged = rec.get("steps_from_log") or {}
        if not rec["ok"] and (logged.get("finished_steps_seconds") or logged.get("running_steps_started_at")):
            lines += ["", f"### {rec['label']} ({rec.get('database', '')}): failed run, steps from its Dagster log", "",
                      "| step | seconds |", "|---|---:|"]
            for step, sec in logged["finished_steps_seconds"].items():
                lines.append(f"| {step} | {sec:.1f} |")
            for step, at in logged["running_steps_started_at"].items():
                lines.append(f"| {step} | running since {at} when the process ended |")
            prog = logged.get("portfolio_analytics_progress") or []
            if prog:
                lines += ["", "portfolio_analytics chunks done: " + ", ".join(
                    f"{p['time'][11:]} {p['days_done']}/{p['days']}" for p in prog)]
    for rec in report["runs"]:
        if rec.get("error_tail"):
            lines += ["", f"### {rec['label']}: failed (exit {rec['exit_code']}), log tail", "", "```",
                      *rec["error_tail"], "```"]
    for note in report.get("notes", []):
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--symbols", type=int)
    p.add_argument("--portfolios", type=int)
    p.add_argument("--positions", type=int)
    p.add_argument("--days", type=int, help="partitions in the backfill (workload 3)")
    p.add_argument("--history", type=int, default=252, help="sessions of price history loaded before the range")
    p.add_argument("--end", default="2025-12-31", help="last partition of the backfill range")
    p.add_argument("--workloads", default="1,2,3,4,5,6,7")
    p.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite",
                   help="warehouse of the pipeline workloads (1, 2, 3, 5 and the setup)")
    p.add_argument("--io-databases", default="sqlite,postgres", help="backends measured by workload 6")
    p.add_argument("--pg-url", default=None, help="PostgreSQL server URL (a throwaway database is created on it)")
    p.add_argument("--footprint", action="store_true",
                   help="after workload 3, measure bytes per table and per index of the warehouse (benchmarks.footprint)")
    p.add_argument("--reads", type=int, default=200, help="portfolios sampled by workload 5")
    p.add_argument("--w3-route", choices=["daemon", "in_process"], default="daemon",
                   help="workload 3 as a user launches it (`sigmasight backfill` executed by a dagster-daemon: queued "
                        "runs) or as one in-process run (materialize)")
    p.add_argument("--partitions-per-run", type=int, default=None,
                   help="SIGMASIGHT_PARTITIONS_PER_RUN for workload 3's backfill (default: the code's)")
    p.add_argument("--daemon-poll-seconds", type=int, default=None, metavar="SECONDS",
                   help="for smoke runs: workload 3's daemon polls its run queue every SECONDS (Dagster: 5) and "
                        "iterates the backfill every 3 × SECONDS (Dagster: 30); the backfill time is then not "
                        "comparable with other runs")
    p.add_argument("--large-portfolios", type=int, help="portfolios of workload 7's book (100,000 at full scale)")
    p.add_argument("--batch-portfolio-days", type=int, default=None,
                   help="SIGMASIGHT_BATCH_PORTFOLIO_DAYS of every workload (default: the code's, 30,000)")
    p.add_argument("--quick", action="store_true",
                   help="medium scale: 500 symbols, 1000 portfolios, 30 days, a large book of 5,000")
    p.add_argument("--out", type=Path, default=HERE / "results.md")
    p.add_argument("--json", type=Path, default=HERE / "results.json")
    p.add_argument("--workdir", type=Path, default=HERE / "_work")
    p.add_argument("--seed", type=int, default=20261121, help="seed of the generated ledger")
    p.add_argument("--market-seed", type=int, default=7, help="seed of the synthetic market")
    p.add_argument("--timeout-minutes", type=float, default=None, help="kill a workload child after this long")
    p.add_argument("--cprofile", default="", help="run these workload ids under cProfile (timings inflated)")
    p.add_argument("--rerender", type=Path, default=None, metavar="RESULTS.json",
                   help="only re-render --out (markdown) from an existing results JSON (e.g. after adding notes)")
    p.add_argument("--pyspy", default="", help="attach `py-spy record` (20 Hz, non-blocking) to these workload ids; "
                                               "the collapsed stacks and a text summary go to the workdir")
    p.add_argument("--code-ref", default=None,
                   help="benchmark sigmasight_assets as committed at this git ref (e.g. HEAD) instead of the working "
                        "tree: it is extracted with `git archive` into WORKDIR/code, so concurrent edits cannot leak in")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def snapshot_code(ref: str, workdir: Path) -> tuple[Path, str]:
    """``sigmasight_assets`` and ``dagster.yaml`` at ``ref`` plus the current ``benchmarks`` package, in
    ``workdir/code``."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    code = workdir / "code"
    if code.exists():
        shutil.rmtree(code)
    code.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "sigmasight_assets", "dagster.yaml"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    shutil.copytree(HERE, code / "benchmarks", ignore=shutil.ignore_patterns("_work", "__pycache__", "*.md", "*.json"))
    return code, commit


def main(argv=None) -> int:
    from .pg import DEFAULT_PG_URL, available, create_database, drop_database

    args = parse_args(argv)
    if args.rerender:
        report = json.loads(args.rerender.read_text())
        write_reports(report, args.out, args.rerender)
        print(f"[bench] rendered {args.out} from {args.rerender}")
        return 0
    argv_text = " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)])
    selected = {int(x) for x in str(args.workloads).split(",") if x.strip()}
    pg_url = args.pg_url or os.environ.get("SIGMASIGHT_BENCH_PG_URL", DEFAULT_PG_URL)
    profiled = {int(x) for x in args.cprofile.split(",") if x.strip()}
    spied = {int(x) for x in args.pyspy.split(",") if x.strip()}
    dates = plan_dates(args.end, args.days, args.history, 60, 3 in selected)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout_minutes * 60 if args.timeout_minutes else None
    report = {
        "benchmark": "sigmasight_assets scale suite (benchmarks/run.py)",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": argv_text,
        "scale": {"symbols": args.symbols, "factor_etfs": 8, "portfolios": args.portfolios,
                  "positions": args.positions, "days": args.days, "history": args.history,
                  "quick": bool(args.quick), "workloads": sorted(selected), "w3_route": args.w3_route,
                  "partitions_per_run": args.partitions_per_run, "large_portfolios": args.large_portfolios,
                  "daemon_poll_s": args.daemon_poll_seconds,
                  "batch_portfolio_days": args.batch_portfolio_days},
        "dates": dates,
        "machine": machine_info(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "runs": [],
        "notes": [],
    }
    base_params = {"symbols": args.symbols, "portfolios": args.portfolios, "positions": args.positions,
                   "days": args.days, "dates": dates, "seed": args.seed, "market_seed": args.market_seed,
                   "reads": args.reads, "pg_url": pg_url, "w3_route": args.w3_route,
                   "partitions_per_run": args.partitions_per_run, "large_portfolios": args.large_portfolios,
                   "w3_timeout_s": timeout, "daemon_poll_s": args.daemon_poll_seconds}
    code_dir = REPO
    if args.code_ref:
        code_dir, commit = snapshot_code(args.code_ref, workdir)
        report["machine"]["code_ref"] = f"{args.code_ref} = {commit[:10]} (sigmasight_assets extracted to {code_dir})"
        report["machine"]["sigmasight_assets_uncommitted_changes"] = False
    global CHILD_CWD
    CHILD_CWD = code_dir
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMASIGHT_")}
    if args.batch_portfolio_days:
        base_env["SIGMASIGHT_BATCH_PORTFOLIO_DAYS"] = str(args.batch_portfolio_days)
    base_env.update({"SIGMASIGHT_MARKET_DATA": "synthetic", "SIGMASIGHT_SYNTHETIC_SEED": str(args.market_seed),
                     "PYTHONPATH": os.pathsep.join([str(code_dir), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})

    def record(rec: dict, database: str) -> dict:
        rec["database"] = database
        report["runs"].append(rec)
        rec["summary"], rec["meets_target"] = evaluate(rec)
        print(f"[bench] {rec['label']} ({database}): wall {rec['wall_s']:.1f} s, CPU {rec['cpu_s']:.1f} s, "
              f"peak RSS {rec['peak_rss_mb']:,.0f} MB — {rec['summary']}", flush=True)
        write_reports(report, args.out, args.json)
        return rec

    if args.daemon_poll_seconds and 3 in selected:
        report["notes"].append(f"workload 3's daemon polled its run queue every {args.daemon_poll_seconds} s and "
                               f"iterated the backfill every {3 * args.daemon_poll_seconds} s instead of Dagster's 5 s "
                               "and 30 s (--daemon-poll-seconds): its time is not comparable with other runs")
    print(f"[bench] scale {report['scale']}; dates {dates}; workdir {workdir}", flush=True)
    pipeline = selected & {1, 2, 3, 5, 7}
    backends = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    for backend in backends if pipeline else []:
        run_dir = workdir / f"pipeline_{backend}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        home = run_dir / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        pg_db = None
        if backend == "sqlite":
            db_url = f"sqlite:///{run_dir / 'warehouse.sqlite'}"
        else:
            reason = available(pg_url)
            if reason:
                report["notes"].append(f"PostgreSQL pipeline skipped: {pg_url} unreachable ({reason})")
                continue
            pg_db = f"sigmasight_bench_{os.getpid()}"
            db_url = create_database(pg_url, pg_db)
        env = {**base_env, "DAGSTER_HOME": str(home), "SIGMASIGHT_DATABASE_URL": db_url}
        params = {**base_params, "db_url": db_url, "workdir": str(run_dir)}
        try:
            steps = [("setup_ledger", None), ("setup_history", None)]
            if 3 in selected:
                steps.append(("w3_backfill", 3))
            if args.footprint:
                steps.append(("footprint", None))
            if 1 in selected:
                steps.append(("w1_symbol_partition", 1))
            elif selected & {2, 5, 7}:
                steps.append(("prep_symbol_partition", None))
            if 2 in selected:
                steps.append(("w2_portfolio_partition", 2))
            elif 5 in selected:
                steps.append(("prep_portfolio_partition", None))
            if 5 in selected:
                steps.append(("w5_portfolio_reads", 5))
            if 7 in selected:  # replaces the ledger: after every workload that reads the first book
                steps += [("setup_large_book", None), ("w7_large_book", 7)]
            for name, wid in steps:
                impl = {"prep_symbol_partition": "w1_symbol_partition",
                        "prep_portfolio_partition": "w2_portfolio_partition"}.get(name, name)
                print(f"[bench] {LABELS[name]} ({backend}) …", flush=True)
                rec = run_child(impl, params, env, run_dir, name, timeout, cprofile=wid in profiled,
                                pyspy=wid in spied)
                rec["workload"], rec["label"] = name, LABELS[name]
                record(rec, backend)
                if not rec["ok"] and name.startswith("setup"):
                    report["notes"].append(f"{name} failed on {backend}: later pipeline workloads skipped")
                    break
        finally:
            if pg_db:
                drop_database(pg_url, pg_db)

    shared = workdir / "shared"
    if shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True)
    shared_params = {**base_params, "workdir": str(shared), "db_url": ""}
    if 4 in selected:
        print(f"[bench] {LABELS['w4_regression']} …", flush=True)
        record(run_child("w4_regression", shared_params, base_env, shared, "w4_regression", timeout,
                         cprofile=4 in profiled, pyspy=4 in spied), "—")
    if 6 in selected:
        for backend in [b.strip() for b in args.io_databases.split(",") if b.strip()]:
            if backend == "postgres" and (reason := available(pg_url)):
                report["notes"].append(f"workload 6 on PostgreSQL skipped: {pg_url} unreachable ({reason})")
                continue
            for shape in ("prices", "ridge"):
                tag = f"w6_io_{backend}_{shape}"
                print(f"[bench] {LABELS['w6_io']} {backend} {shape} …", flush=True)
                record(run_child("w6_io", {**shared_params, "io_backend": backend, "io_shape": shape}, base_env, shared,
                                 tag, timeout, cprofile=6 in profiled, pyspy=6 in spied), backend)

    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    write_reports(report, args.out, args.json)
    print(f"[bench] results: {args.out} and {args.json}", flush=True)
    failed = [r["tag"] for r in report["runs"] if not r["ok"]]
    if failed:
        print(f"[bench] failed: {failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
