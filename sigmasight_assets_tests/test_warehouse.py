"""The warehouse repository: idempotent partition replace, scope guards, rollback, typed reads."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from sigmasight_assets import calendar
from sigmasight_assets.warehouse import Replacement, Warehouse, repository
from sigmasight_assets.warehouse.engine import engine_for

DAYS = calendar.sessions("2025-01-02", "2025-01-16")  # 10 sessions (01-09 closed)
SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def price_rows(days=DAYS, symbols=SYMBOLS, base: float = 100.0) -> pd.DataFrame:
    """Deterministic prices rows: close = base + 10·symbol index + day index."""
    rows = []
    for t, d in enumerate(days):
        for i, s in enumerate(symbols):
            c = base + 10 * i + t
            rows.append({"date": d, "symbol": s, "open": c - 0.5, "high": c + 1, "low": c - 1, "close": c,
                         "adj_close": c * 0.99, "volume": 1e6 + t, "dividend": 0.0, "split_ratio": 1.0,
                         "source": "test"})
    return pd.DataFrame(rows)


def stored(wh: Warehouse, table="prices") -> pd.DataFrame:
    return wh.read(table).sort_values(["date", "symbol"], ignore_index=True)


def test_days_fixture_is_ten_sessions():
    assert len(DAYS) == 10 and pd.Timestamp("2025-01-09") not in DAYS


def test_replace_is_idempotent(warehouse):
    frame = price_rows()
    assert warehouse.replace_partitions("prices", frame, DAYS[0], DAYS[-1]) == 30
    first = stored(warehouse)
    assert warehouse.replace_partitions("prices", frame, DAYS[0], DAYS[-1]) == 30
    second = stored(warehouse)
    assert warehouse.count("prices") == 30
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, frame.sort_values(["date", "symbol"], ignore_index=True), check_exact=True)


def test_range_replace_touches_only_the_range(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    mid = DAYS[3:6]
    warehouse.replace_partitions("prices", price_rows(days=mid, base=500.0), mid[0], mid[-1])
    got = stored(warehouse)
    assert len(got) == 30
    inside = got["date"].isin(mid)
    assert (got.loc[inside, "close"] >= 500).all()
    old = price_rows().sort_values(["date", "symbol"], ignore_index=True)
    pd.testing.assert_frame_equal(got[~inside].reset_index(drop=True), old[~old["date"].isin(mid)].reset_index(drop=True))


def test_replacing_a_range_with_nothing_clears_only_that_range(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    empty = price_rows().iloc[:0]
    assert warehouse.replace_partitions("prices", empty, DAYS[2], DAYS[4]) == 0
    got = stored(warehouse)
    assert len(got) == 21
    assert not got["date"].isin(DAYS[2:5]).any()


def test_scoped_keys_replace_only_those_symbols(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    new_aapl = price_rows(symbols=["AAPL"], base=900.0)
    assert warehouse.replace_partitions("prices", new_aapl, DAYS[0], DAYS[-1], keys=["AAPL"]) == 10
    got = stored(warehouse)
    assert len(got) == 30
    assert (got.loc[got["symbol"] == "AAPL", "close"] >= 900).all()
    old = price_rows().sort_values(["date", "symbol"], ignore_index=True)
    others = got[got["symbol"] != "AAPL"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, old[old["symbol"] != "AAPL"].reset_index(drop=True))


def test_scoped_keys_with_no_rows_delete_only_those_symbols(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    warehouse.replace_partitions("prices", price_rows().iloc[:0], DAYS[0], DAYS[-1], keys=["MSFT"])
    got = stored(warehouse)
    assert sorted(got["symbol"].unique()) == ["AAPL", "NVDA"] and len(got) == 20


def test_extra_filter_scopes_the_delete(warehouse):
    """symbol_status rows of one asset are replaced without touching another asset's rows."""
    def status(asset, reason):
        return pd.DataFrame({"date": DAYS[:2], "symbol": ["AAPL", "AAPL"], "asset": asset, "status": "failed",
                             "reason": reason})

    warehouse.replace_partitions("symbol_status", status("prices", "a"), DAYS[0], DAYS[-1], extra_filter={"asset": "prices"})
    warehouse.replace_partitions("symbol_status", status("daily_valuations", "b"), DAYS[0], DAYS[-1],
                                 extra_filter={"asset": "daily_valuations"})
    warehouse.replace_partitions("symbol_status", status("prices", "c"), DAYS[0], DAYS[-1], extra_filter={"asset": "prices"})
    got = warehouse.read("symbol_status")
    assert len(got) == 4
    assert sorted(got.groupby("asset")["reason"].first().items()) == [("daily_valuations", "b"), ("prices", "c")]


@pytest.mark.parametrize("bad_day", ["2025-01-17", "2024-12-31"])
def test_rows_outside_the_range_are_refused(warehouse, bad_day):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    before = stored(warehouse)
    frame = price_rows(days=DAYS[:3])
    frame.loc[0, "date"] = pd.Timestamp(bad_day)
    with pytest.raises(ValueError, match="outside the partition range"):
        warehouse.replace_partitions("prices", frame, DAYS[0], DAYS[2])
    pd.testing.assert_frame_equal(stored(warehouse), before)


def test_rows_outside_the_scope_are_refused(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    before = stored(warehouse)
    with pytest.raises(ValueError, match="outside the scoped keys"):
        warehouse.replace_partitions("prices", price_rows(symbols=["AAPL", "MSFT"], base=1.0), DAYS[0], DAYS[-1],
                                     keys=["AAPL"])
    pd.testing.assert_frame_equal(stored(warehouse), before)


def test_unknown_or_missing_columns_are_refused(warehouse):
    with pytest.raises(ValueError, match="columns the table does not"):
        warehouse.replace_partitions("prices", price_rows().assign(colour="red"), DAYS[0], DAYS[-1])
    with pytest.raises(ValueError, match="lacks required columns.*close"):
        warehouse.replace_partitions("prices", price_rows().drop(columns=["close"]), DAYS[0], DAYS[-1])
    with pytest.raises(KeyError, match="unknown warehouse table"):
        warehouse.replace_partitions("nope", price_rows(), DAYS[0], DAYS[-1])


# -- rollback --------------------------------------------------------------------------------------
def test_not_null_violation_rolls_back_the_delete(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    before = stored(warehouse)
    bad = price_rows(base=700.0)
    bad.loc[5, "close"] = np.nan  # close is NOT NULL
    with pytest.raises(IntegrityError):
        warehouse.replace_partitions("prices", bad, DAYS[0], DAYS[-1])
    pd.testing.assert_frame_equal(stored(warehouse), before)


def test_duplicate_rows_roll_back(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    before = stored(warehouse)
    dup = pd.concat([price_rows(base=1.0), price_rows(base=1.0).iloc[:1]], ignore_index=True)
    with pytest.raises(IntegrityError):
        warehouse.replace_partitions("prices", dup, DAYS[0], DAYS[-1])
    pd.testing.assert_frame_equal(stored(warehouse), before)


def test_failure_after_the_delete_leaves_previous_rows(warehouse, monkeypatch):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    before = stored(warehouse)
    real_insert = Warehouse._bulk_insert
    seen = {}

    def insert_then_crash(self, conn, table, frame):
        # The delete has happened inside this transaction; so has part of the insert.
        seen["rows_in_tx_before_insert"] = conn.execute(text("SELECT COUNT(*) FROM prices")).scalar_one()
        real_insert(self, conn, table, frame.iloc[:5])
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Warehouse, "_bulk_insert", insert_then_crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        warehouse.replace_partitions("prices", price_rows(base=800.0), DAYS[0], DAYS[-1])
    assert seen["rows_in_tx_before_insert"] == 0  # the delete did run
    pd.testing.assert_frame_equal(stored(warehouse), before)


def _status_rows(days=DAYS, symbols=SYMBOLS, reason="old") -> pd.DataFrame:
    return pd.DataFrame([{"date": d, "symbol": s, "asset": "prices", "status": "skipped", "reason": reason}
                         for d in days for s in symbols])


def test_replace_many_stores_every_table_or_none(warehouse):
    """Several tables' partitions in one transaction: a failure in the last one leaves the first's
    old rows too; a scope error is raised before anything is deleted."""
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    warehouse.replace_partitions("symbol_status", _status_rows(), DAYS[0], DAYS[-1])
    before_px, before_st = stored(warehouse), stored(warehouse, "symbol_status")
    new_px = price_rows(base=500.0)
    bad_status = _status_rows(reason="new")
    bad_status.loc[3, "status"] = None  # NOT NULL
    items = [Replacement("prices", new_px, DAYS[0], DAYS[-1]), Replacement("symbol_status", bad_status, DAYS[0], DAYS[-1])]
    with pytest.raises(IntegrityError):
        warehouse.replace_many(items)
    pd.testing.assert_frame_equal(stored(warehouse), before_px)
    pd.testing.assert_frame_equal(stored(warehouse, "symbol_status"), before_st)
    with pytest.raises(ValueError, match="outside the partition range"):
        warehouse.replace_many([Replacement("prices", new_px, DAYS[0], DAYS[-1]),
                                Replacement("symbol_status", _status_rows(), DAYS[1], DAYS[-1])])
    pd.testing.assert_frame_equal(stored(warehouse), before_px)
    good = [Replacement("prices", new_px, DAYS[0], DAYS[-1]),
            Replacement("symbol_status", _status_rows(reason="new"), DAYS[0], DAYS[-1], keys=SYMBOLS,
                        extra_filter={"asset": "prices"})]
    assert warehouse.replace_many(good) == [30, 30]
    pd.testing.assert_frame_equal(stored(warehouse), new_px.sort_values(["date", "symbol"], ignore_index=True))
    assert set(stored(warehouse, "symbol_status")["reason"]) == {"new"}


def test_transient_error_is_retried_on_a_fresh_transaction(warehouse, monkeypatch):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    real_insert = Warehouse._bulk_insert
    calls = {"n": 0}

    def flaky(self, conn, table, frame):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        real_insert(self, conn, table, frame)

    monkeypatch.setattr(Warehouse, "_bulk_insert", flaky)
    monkeypatch.setattr(repository.time, "sleep", lambda s: None)
    assert warehouse.replace_partitions("prices", price_rows(base=300.0), DAYS[0], DAYS[-1]) == 30
    assert calls["n"] == 2
    got = stored(warehouse)
    assert len(got) == 30 and (got["close"] >= 300).all()


def test_non_transient_operational_error_is_not_retried(warehouse, monkeypatch):
    calls = {"n": 0}

    def broken(self, conn, table, frame):
        calls["n"] += 1
        raise OperationalError("INSERT", {}, Exception("no such column: foo"))

    monkeypatch.setattr(Warehouse, "_bulk_insert", broken)
    monkeypatch.setattr(repository.time, "sleep", lambda s: None)
    with pytest.raises(OperationalError):
        warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    assert calls["n"] == 1


# -- typed reads -----------------------------------------------------------------------------------
def universe_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "date": [DAYS[0], DAYS[0], DAYS[1]],
        "symbol": ["SPY", "SPY261218P01400000", "PRIVATE_FUND_A"],
        "asset_class": ["PUBLIC", "OPTIONS", "PRIVATE"],
        "status": ["factor", "active", "private"],
        "is_factor_etf": np.array([True, False, False]),
        "fetch": np.array([True, True, False]),
        "underlying": [None, "SPY", None],
        "expiration": pd.to_datetime([pd.NaT, "2026-12-18", pd.NaT]),
        "position_count": np.array([0, 3, 1], dtype=np.int64),
    })


def test_read_round_trips_dtypes_and_nulls(warehouse):
    frame = universe_rows()
    warehouse.replace_partitions("symbol_universe", frame, DAYS[0], DAYS[-1])
    got = warehouse.read("symbol_universe").sort_values(["date", "symbol"], ignore_index=True)
    want = frame.sort_values(["date", "symbol"], ignore_index=True)
    assert got["date"].dtype == "datetime64[ns]"
    assert got["expiration"].dtype == "datetime64[ns]"
    assert got["is_factor_etf"].dtype == bool and got["fetch"].dtype == bool
    assert got["position_count"].dtype == np.int64
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=True)
    assert got["underlying"].isna().sum() == 2 and got["expiration"].isna().sum() == 2


def test_booleans_and_integers_are_stored_as_sqlite_integers(warehouse):
    warehouse.replace_partitions("symbol_universe", universe_rows(), DAYS[0], DAYS[-1])
    types = warehouse.query(
        "SELECT DISTINCT typeof(is_factor_etf) AS b1, typeof(fetch) AS b2, typeof(position_count) AS i, "
        "typeof(date) AS d FROM symbol_universe"
    )
    assert types.to_dict("records") == [{"b1": "integer", "b2": "integer", "i": "integer", "d": "text"}]
    # Values are 0/1, queryable by SQL users.
    assert warehouse.query("SELECT COUNT(*) AS n FROM symbol_universe WHERE fetch = 1")["n"][0] == 2


def test_nan_is_stored_as_null_and_floats_round_trip_exactly(warehouse):
    frame = price_rows(days=DAYS[:2], symbols=["AAPL"])
    frame["open"] = [np.nan, 0.1 + 0.2]
    frame["volume"] = [np.nan, 1e-300]
    frame["close"] = [1 / 3, 123456789.123456789]
    warehouse.replace_partitions("prices", frame, DAYS[0], DAYS[1])
    assert warehouse.query("SELECT COUNT(*) AS n FROM prices WHERE open IS NULL")["n"][0] == 1
    assert warehouse.query("SELECT COUNT(*) AS n FROM prices WHERE volume IS NULL")["n"][0] == 1
    assert set(warehouse.query("SELECT typeof(open) AS t FROM prices")["t"]) == {"null", "real"}
    got = stored(warehouse)
    assert got["open"].dtype == float and np.isnan(got.loc[0, "open"])
    assert got.loc[1, "open"] == 0.1 + 0.2
    assert got.loc[1, "volume"] == 1e-300
    assert got.loc[0, "close"] == 1 / 3 and got.loc[1, "close"] == 123456789.123456789


def test_read_filters_range_and_keys_inclusively(warehouse):
    warehouse.replace_partitions("prices", price_rows(), DAYS[0], DAYS[-1])
    got = warehouse.read("prices", DAYS[2], DAYS[4], keys=["MSFT", "NVDA"], columns=["date", "symbol", "close"])
    assert list(got.columns) == ["date", "symbol", "close"]
    assert len(got) == 6
    assert set(got["date"]) == set(DAYS[2:5]) and set(got["symbol"]) == {"MSFT", "NVDA"}
    assert warehouse.count("prices", DAYS[2], DAYS[4]) == 9
    assert warehouse.latest_date("prices") == DAYS[-1].date()


def test_read_with_more_keys_than_one_in_chunk(warehouse):
    symbols = [f"S{i:04d}" for i in range(1000)]  # > 900 bound parameters: chunked IN lists
    frame = price_rows(days=DAYS[:1], symbols=symbols)
    warehouse.replace_partitions("prices", frame, DAYS[0], DAYS[0])
    got = warehouse.read("prices", keys=symbols + ["NOPE"])
    assert len(got) == 1000 and got["symbol"].is_unique
    # A scoped replace over more than one chunk of keys deletes every scoped row.
    warehouse.replace_partitions("prices", frame.iloc[:0], DAYS[0], DAYS[0], keys=symbols[:950])
    assert sorted(warehouse.read("prices")["symbol"]) == symbols[950:]


def test_many_keys_over_a_date_range_read_the_same_rows_by_one_scan(warehouse, monkeypatch):
    """More keys than one IN list with a date range: one range scan filtered in pandas returns
    exactly the IN queries' rows and columns (the key column is not added to what was asked)."""
    symbols = [f"S{i:04d}" for i in range(1200)]
    warehouse.replace_partitions("prices", price_rows(days=DAYS[:3], symbols=symbols), DAYS[0], DAYS[2])
    keys = symbols[200:] + ["NOPE"]  # 1,001 keys: more than one IN list
    statements = []
    real = warehouse._fetch_frame
    monkeypatch.setattr(warehouse, "_fetch_frame", lambda conn, stmt, names: statements.append(str(stmt)) or real(conn, stmt, names))
    got = warehouse.read("prices", DAYS[1], DAYS[2], keys=keys, columns=["date", "close"])
    assert len(statements) == 1 and " IN " not in statements[0].upper()
    assert list(got.columns) == ["date", "close"]
    monkeypatch.setattr(repository, "_IN_CHUNK", 5000)  # the IN-list path for comparison
    statements.clear()
    expect = warehouse.read("prices", DAYS[1], DAYS[2], keys=keys, columns=["date", "close"])
    assert len(statements) == 1 and " IN " in statements[0].upper()
    key = ["date", "close"]
    pd.testing.assert_frame_equal(got.sort_values(key, ignore_index=True), expect.sort_values(key, ignore_index=True))
    assert len(got) == 2 * 1000


def test_datetime_column_round_trip(warehouse):
    books = pd.DataFrame({"portfolio_id": ["P1"], "name": ["One"], "currency": ["USD"], "source_file": [None],
                          "loaded_at": [pd.Timestamp("2026-01-02 03:04:05.123456")]})
    with warehouse.engine.begin() as conn:
        warehouse.insert(conn, "portfolios", books)
    got = warehouse.read("portfolios")
    assert got.loc[0, "loaded_at"] == pd.Timestamp("2026-01-02 03:04:05.123456")
    assert got["loaded_at"].dtype == "datetime64[ns]"
    assert got.loc[0, "source_file"] is None


# -- engine ----------------------------------------------------------------------------------------
def test_engine_is_shared_per_url_and_sqlite_uses_wal(tmp_warehouse_url, warehouse):
    assert engine_for(tmp_warehouse_url) is warehouse.engine
    with warehouse.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one().lower() == "wal"
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()) >= 10_000


def test_create_all_makes_the_asset_tables_with_indexes(warehouse):
    names = set(warehouse.query("SELECT name FROM sqlite_master WHERE type = 'table'")["name"])
    assert {"portfolios", "positions", "capital_flows", "symbol_universe", "prices", "daily_valuations",
            "symbol_status"} <= names
    idx = set(warehouse.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'prices'")["name"])
    assert idx == {"ix_prices_key_date", "ix_prices_actions"}  # (date, symbol) is the clustered primary key
    ddl = warehouse.query("SELECT sql FROM sqlite_master WHERE name = 'prices'")["sql"].iloc[0]
    assert "PRIMARY KEY (date, symbol)" in ddl and "WITHOUT ROWID" in ddl


def test_reading_no_key_returns_no_row_with_the_columns_asked(warehouse):
    """A step with nothing to compute asks for an empty list of keys (e.g. a day whose universe was
    never built): that is an empty, typed frame, not an error."""
    got = warehouse.read("daily_valuations", DAYS[0], DAYS[-1], keys=[], columns=["date", "symbol", "pe"])
    assert list(got.columns) == ["date", "symbol", "pe"] and got.empty
    assert warehouse.read("positions", keys=[], key_column="symbol").empty


def test_every_column_of_every_table_has_a_description():
    """The UI's column schema (``dagster/column_schema``) shows ``comment``: none may be blank."""
    from sigmasight_assets.warehouse.schema import TABLES

    missing = [f"{t.name}.{c.name}" for t in TABLES.values() for c in t.columns if not (c.comment or "").strip()]
    assert not missing, f"columns without a description (add them to COLUMN_DOCS in warehouse/schema.py): {missing}"
