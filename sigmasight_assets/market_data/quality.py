"""Quarantine at the door: drop provider rows that would break the warehouse rules, with a reason.

The pandera schemas of ``prices`` and ``daily_valuations`` (``schemas.py``) fail a whole frame for
one bad row, which would throw away every other symbol's day. The screens here remove exactly the
rows those schemas (and a few plain sanity rules) would refuse, and return them with a one-line
reason, so that validation afterwards only guards against our own bugs.

Rules (a row is rejected for the first rule it breaks, in this order)
--------------------------------------------------------------------
Both tables
    ``date`` present; ``symbol`` a non-empty string of at most 64 characters; ``source`` present.
``prices``
    ``close`` and ``adj_close`` present, finite and > 0; ``open``, ``high``, ``low`` finite and > 0
    when present; ``volume`` finite and ≥ 0 when present; ``dividend`` finite and ≥ 0 when present;
    ``split_ratio`` finite and > 0 when present; ``dividend`` and ``split_ratio`` both present or both
    missing (missing together means "actions unknown", see :mod:`.base`); ``high ≥ low`` when both
    are present.
``daily_valuations``
    ``pe``, ``forward_pe``, ``provider_beta`` finite when present; ``week52_high``, ``week52_low``
    finite and > 0 when present; ``market_cap`` finite and ≥ 0 when present; ``dividend_yield`` in
    [0, 1] (a decimal fraction) when present; ``week52_low ≤ week52_high`` when both are present.
Duplicates
    Several rows for one (date, symbol): identical copies (every column equal, NaN equal to NaN)
    are read once; copies that disagree are all rejected, since nothing says which one is right.

A value that is present but not a number (a string from a provider) is rejected as "not a
number". Every check is vectorised over the frame; reasons are only formatted for rejected rows.
The reason reads ``"<field>: <problem> (<value>)"``, e.g. ``"high: below low (98.0 vs 99.5)"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import REJECTED_COLUMNS, empty_rejected

KEY_COLUMNS = ("date", "symbol")
MAX_SYMBOL_LENGTH = 64


@dataclass(frozen=True)
class Bound:
    """The allowed values of one numeric field.

    ``required`` fields must be present; ``low``/``high`` are inclusive bounds unless the matching
    ``*_open`` flag makes them strict; ``None`` means unbounded on that side. Every present value
    must be finite.
    """

    field: str
    required: bool = False
    low: float | None = None
    low_open: bool = False
    high: float | None = None

    def problem(self) -> str:
        if self.low is not None and self.high is not None:
            return f"outside [{self.low:g}, {self.high:g}]"
        if self.low is not None:
            if self.low == 0:
                return "must be positive" if self.low_open else "must not be negative"
            return f"must be {'>' if self.low_open else '≥'} {self.low:g}"
        return "out of range"  # pragma: no cover - every bound declared below has a low side


PRICE_BOUNDS = (
    Bound("close", required=True, low=0.0, low_open=True),
    Bound("adj_close", required=True, low=0.0, low_open=True),
    Bound("open", low=0.0, low_open=True),
    Bound("high", low=0.0, low_open=True),
    Bound("low", low=0.0, low_open=True),
    Bound("volume", low=0.0),
    Bound("dividend", low=0.0),
    Bound("split_ratio", low=0.0, low_open=True),
)
VALUATION_BOUNDS = (
    Bound("pe"),
    Bound("forward_pe"),
    Bound("provider_beta"),
    Bound("week52_high", low=0.0, low_open=True),
    Bound("week52_low", low=0.0, low_open=True),
    Bound("market_cap", low=0.0),
    Bound("dividend_yield", low=0.0, high=1.0),
)


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


class RowVerdicts:
    """The first (field, problem) per row of a frame, filled rule by rule with vectorised masks."""

    def __init__(self, index: pd.Index):
        self.field = pd.Series(None, index=index, dtype=object)
        self.problem = pd.Series(None, index=index, dtype=object)

    def flag(self, mask, field: str, problem: str, values=None) -> None:
        """Record ``field: problem`` for the rows in ``mask`` that have no verdict yet.

        ``values`` (a Series aligned with the frame, or a pair of them) is shown after the problem;
        it is formatted only for the flagged rows.
        """
        mask = np.asarray(mask, dtype=bool) & self.field.isna().to_numpy()
        if not mask.any():
            return
        rows = self.field.index[mask]
        self.field.loc[rows] = field
        if values is None:
            self.problem.loc[rows] = problem
        elif isinstance(values, tuple):
            left, right = (v.loc[rows] for v in values)
            self.problem.loc[rows] = [f"{problem} ({_fmt(a)} vs {_fmt(b)})" for a, b in zip(left, right)]
        else:
            self.problem.loc[rows] = [f"{problem} ({_fmt(v)})" for v in values.loc[rows]]

    def absorb(self, problems: pd.DataFrame) -> None:
        """Take the verdicts of :func:`row_problems` (on some of the rows) for rows without one yet."""
        found = problems["field"].notna()
        rows = problems.index[found.to_numpy()]
        rows = rows[self.field.loc[rows].isna().to_numpy()]
        self.field.loc[rows] = problems.loc[rows, "field"]
        self.problem.loc[rows] = problems.loc[rows, "problem"]

    @property
    def bad(self) -> pd.Series:
        """Rows with a verdict."""
        return self.field.notna()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"field": self.field, "problem": self.problem})


def _numeric(frame: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of present cells that are not numbers)."""
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype("float64"), pd.Series(False, index=frame.index)
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    return num, raw.notna() & num.isna()


def _check_keys(frame: pd.DataFrame, verdicts: RowVerdicts) -> None:
    verdicts.flag(frame["date"].isna(), "date", "missing")
    sym = frame["symbol"]
    if pd.api.types.is_object_dtype(sym) or pd.api.types.is_string_dtype(sym):
        length = sym.str.len()  # NaN for anything that is not a string
    else:
        length = pd.Series(np.nan, index=sym.index)
    verdicts.flag(length.isna() | (length == 0), "symbol", "missing", sym)
    verdicts.flag(length > MAX_SYMBOL_LENGTH, "symbol", f"longer than {MAX_SYMBOL_LENGTH} characters", sym)


def _check_bounds(frame: pd.DataFrame, bounds, verdicts: RowVerdicts) -> dict[str, pd.Series]:
    numbers: dict[str, pd.Series] = {}
    for b in bounds:
        num, not_number = _numeric(frame, b.field)
        numbers[b.field] = num
        verdicts.flag(not_number, b.field, "not a number", frame[b.field])
        if b.required:
            verdicts.flag(num.isna() & ~not_number, b.field, "missing")
        present = num.notna()
        verdicts.flag(present & ~np.isfinite(num), b.field, "not a finite number", num)
        bad = pd.Series(False, index=frame.index)
        if b.low is not None:
            bad |= (num <= b.low) if b.low_open else (num < b.low)
        if b.high is not None:
            bad |= num > b.high
        verdicts.flag(present & bad, b.field, b.problem(), num)
    return numbers


def row_problems(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The first rule each row breaks (keys and values only; duplicates are :func:`duplicates`).

    Parameters
    ----------
    frame : DataFrame
        Rows with the columns of ``table`` (``PRICE_COLUMNS`` or ``VALUATION_COLUMNS``; ``source``
        is checked when present).
    table : {'prices', 'daily_valuations'}
        Which rule set (see the module docstring).

    Returns
    -------
    DataFrame
        Same index as ``frame``; columns ``field`` and ``problem`` (the problem includes the value,
        e.g. ``"must be positive (-1.0)"``), both None for a good row.

    Raises
    ------
    ValueError
        For an unknown ``table`` or a frame missing one of its columns (a bug, not bad data).
    """
    bounds = {"prices": PRICE_BOUNDS, "daily_valuations": VALUATION_BOUNDS}.get(table)
    if bounds is None:
        raise ValueError(f"no quality rules for table {table!r}")
    missing = [c for c in (*KEY_COLUMNS, *(b.field for b in bounds)) if c not in frame.columns]
    if missing:
        raise ValueError(f"{table} frame lacks column(s) {missing}")
    verdicts = RowVerdicts(frame.index)
    _check_keys(frame, verdicts)
    if "source" in frame.columns:
        verdicts.flag(frame["source"].isna(), "source", "missing")
    num = _check_bounds(frame, bounds, verdicts)
    if table == "prices":
        div_known, split_known = num["dividend"].notna(), num["split_ratio"].notna()
        verdicts.flag(div_known & ~split_known, "split_ratio",
                      "missing while dividend is known (both or neither)", num["dividend"])
        verdicts.flag(~div_known & split_known, "dividend",
                      "missing while split_ratio is known (both or neither)", num["split_ratio"])
        verdicts.flag(num["high"] < num["low"], "high", "below low", (num["high"], num["low"]))
    else:
        verdicts.flag(num["week52_low"] > num["week52_high"], "week52_low", "above week52_high",
                      (num["week52_low"], num["week52_high"]))
    return verdicts.frame()


def duplicates(frame: pd.DataFrame, keys=KEY_COLUMNS) -> pd.DataFrame:
    """Rows sharing their key with another row, and whether the copies disagree.

    Parameters
    ----------
    frame : DataFrame
        Any rows with the ``keys`` columns.
    keys : sequence of str
        The uniqueness key, (date, symbol) by default.

    Returns
    -------
    DataFrame
        Same index as ``frame``; ``copies`` (rows with this key, 1 when unique), ``conflict`` (the
        copies differ in some column; NaN equals NaN), ``first`` (index label of the key's first
        row) and ``repeat`` (an identical later copy, to be read once).
    """
    keys = list(keys)
    out = pd.DataFrame({"copies": 1, "conflict": False, "first": frame.index, "repeat": False},
                       index=frame.index)
    dup = frame.duplicated(keys, keep=False)
    if not dup.any():
        return out
    sub = frame[dup]
    # Key values stay as they are (NaT keys group together with dropna=False).
    grouped = sub.groupby(keys, dropna=False, sort=False)
    out.loc[sub.index, "copies"] = grouped[keys[0]].transform("size").to_numpy()
    first = grouped.cumcount() == 0
    first_label = pd.Series(sub.index.where(first.to_numpy()), index=sub.index)
    out.loc[sub.index, "first"] = first_label.groupby([sub[k] for k in keys], dropna=False).transform("first")
    values = [c for c in sub.columns if c not in keys]
    # hash each row's values (NaN hashes equal) to tell identical copies from conflicting ones
    row_hash = pd.util.hash_pandas_object(sub[values], index=False) if values else pd.Series(0, index=sub.index)
    distinct = row_hash.groupby([sub[k] for k in keys], dropna=False).transform("nunique")
    out.loc[sub.index, "conflict"] = (distinct > 1).to_numpy()
    out.loc[sub.index, "repeat"] = (~first & (distinct == 1)).to_numpy()
    return out


def _screen(frame: pd.DataFrame, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    problems = row_problems(frame, table)
    reason = pd.Series(None, index=frame.index, dtype=object)
    bad = problems["field"].notna()
    reason[bad] = problems.loc[bad, "field"] + ": " + problems.loc[bad, "problem"]
    # Duplicates are judged among the rows that passed the other rules: a bad copy does not make a
    # good one ambiguous.
    good = frame[~bad]
    dups = duplicates(good)
    conflict = dups["conflict"]
    if conflict.any():
        rows = conflict[conflict].index
        reason[rows] = [f"date: {n} rows for this symbol and day with different values"
                        for n in dups.loc[rows, "copies"]]
    drop = reason.notna()
    drop_repeat = pd.Series(False, index=frame.index)
    drop_repeat[dups.index] = dups["repeat"].to_numpy()
    clean = frame[~drop & ~drop_repeat].copy()
    bounds = PRICE_BOUNDS if table == "prices" else VALUATION_BOUNDS
    for b in bounds:  # what is left is numeric: store it as float, as the schemas expect
        clean[b.field] = pd.to_numeric(clean[b.field], errors="coerce").astype("float64")
    if not drop.any():
        return clean, empty_rejected()
    rejected = pd.DataFrame({
        "date": pd.to_datetime(frame.loc[drop, "date"], errors="coerce").astype("datetime64[ns]"),
        "symbol": frame.loc[drop, "symbol"].astype(object),
        "reason": reason[drop].astype(object),
    })[REJECTED_COLUMNS].reset_index(drop=True)
    return clean, rejected


def screen_prices(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a ``prices`` frame into the rows the warehouse accepts and the rejected ones.

    Parameters
    ----------
    frame : DataFrame
        ``PRICE_COLUMNS`` rows as a provider delivered them.

    Returns
    -------
    clean : DataFrame
        The rows that pass every rule of the module docstring (index kept, numeric columns as
        float64, one copy of identical duplicates); they pass the pandera ``prices`` schema.
    rejected : DataFrame
        ``date, symbol, reason`` per removed row, reason ``"<field>: <problem> (<value>)"``.
    """
    return _screen(frame, "prices")


def screen_valuations(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a ``daily_valuations`` frame into accepted and rejected rows.

    Parameters
    ----------
    frame : DataFrame
        ``VALUATION_COLUMNS`` rows as a provider delivered them (the dividend yield a decimal
        fraction, 0.0123 = 1.23 %).

    Returns
    -------
    clean : DataFrame
        The rows that pass every rule (index kept, numeric columns float64); they pass the pandera
        ``daily_valuations`` schema.
    rejected : DataFrame
        ``date, symbol, reason`` per removed row.
    """
    return _screen(frame, "daily_valuations")
