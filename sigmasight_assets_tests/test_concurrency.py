"""Two runs writing the same partition at the same time must not corrupt it.

Two writer *processes* (as two Dagster runs would be) replace the same partition of ``prices`` again
and again through ``Warehouse.replace_partitions``, each with its own recognisable rows, while this
process keeps reading it. Every read and the final table must hold exactly one complete copy of the
partition, written by one writer: no duplicates, no mix, never empty or half-written — and neither
writer may fail. On SQLite (WAL, busy timeout) and on the PostgreSQL server.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback

import numpy as np
import pandas as pd
import pytest

DAY = "2025-03-05"
ROWS = 1500
ROUNDS = 12


def partition_frame(writer: str, rows: int = ROWS) -> pd.DataFrame:
    value = {"A": 1.0, "B": 2.0, "seed": 0.5}[writer]
    return pd.DataFrame({
        "date": pd.to_datetime([DAY] * rows),
        "symbol": [f"S{i:05d}" for i in range(rows)],
        "open": value, "high": value, "low": value, "close": value, "adj_close": value,
        "volume": np.arange(rows, dtype=float),
        "source": writer,
    })


def _writer(url: str, writer: str, start, errors) -> None:
    try:
        from sigmasight_assets.warehouse import Warehouse

        wh = Warehouse(url)
        frame = partition_frame(writer)
        start.wait(30)
        for _ in range(ROUNDS):
            wh.replace_partitions("prices", frame, DAY, DAY)
    except BaseException:  # noqa: BLE001 - reported to the parent
        errors.put(f"writer {writer}: {traceback.format_exc()}")


def race(url: str) -> list[pd.DataFrame]:
    """Run the two writers against ``url`` while reading; return every snapshot read."""
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(url)
    wh.create_all()
    wh.replace_partitions("prices", partition_frame("seed"), DAY, DAY)
    ctx = mp.get_context("spawn")
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, start, errors)) for w in ("A", "B")]
    for p in procs:
        p.start()
    start.set()
    snapshots = []
    deadline = time.time() + 240
    while any(p.is_alive() for p in procs) and time.time() < deadline:
        snapshots.append(wh.read("prices", DAY, DAY, columns=["symbol", "close", "source"]))
        time.sleep(0.02)
    for p in procs:
        p.join(timeout=max(1, deadline - time.time()))
        if p.is_alive():
            p.kill()
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    snapshots.append(wh.read("prices", DAY, DAY, columns=["symbol", "close", "source"]))
    wh.engine.dispose()
    return snapshots


def assert_one_consistent_copy(frame: pd.DataFrame) -> None:
    assert len(frame) == ROWS, f"{len(frame)} rows instead of {ROWS}"
    assert not frame["symbol"].duplicated().any(), "duplicate (date, symbol) rows"
    writers = set(frame["source"])
    assert len(writers) == 1, f"rows of several writers mixed: {writers}"
    (writer,) = writers
    assert (frame["close"] == partition_frame(writer)["close"].iloc[0]).all()


def check(snapshots: list[pd.DataFrame]) -> None:
    assert len(snapshots) >= 2
    for snap in snapshots:
        assert_one_consistent_copy(snap)
    assert snapshots[-1]["source"].iloc[0] in {"A", "B"}  # the last write of one of the two runs


@pytest.mark.slow
def test_two_writers_on_sqlite(tmp_warehouse_url):
    check(race(tmp_warehouse_url))


@pytest.mark.slow
@pytest.mark.postgres
def test_two_writers_on_postgres(request):
    pg_url = request.getfixturevalue("pg_url")
    check(race(pg_url))


from .test_postgres import pg_url  # noqa: E402,F401  (the throwaway-database fixture)
