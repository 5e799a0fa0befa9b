"""Array and frame helpers shared by the calc modules (one implementation each).

* wide-frame alignment for the rolling regressions (:func:`aligned_returns`,
  :func:`aligned_regressors`, :func:`trailing_rows`) and their parameter checks and caps;
* building one long result frame from per-day column arrays (:func:`concat_columns`);
* (date, portfolio) keys of snapshots and the row codes of other frames on them
  (:func:`portfolio_day_keys`, :func:`portfolio_day_codes`);
* upper-casing a column of labels once per distinct value (:func:`upper_values`).

NaN policy: nothing here fills a missing value; a session or symbol that is absent stays NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .returns import check_wide_frame

__all__ = [
    "RESULT_DTYPES",
    "aligned_regressors",
    "aligned_returns",
    "cap_values",
    "concat_columns",
    "portfolio_day_codes",
    "portfolio_day_keys",
    "trailing_rows",
    "upper_values",
    "validate_window_params",
]

#: dtype of the columns of long result frames; any column not listed is float64
RESULT_DTYPES = {
    "date": "datetime64[ns]",
    "symbol": object,
    "factor": object,
    "reason": object,
    "factor_1": object,
    "factor_2": object,
    "portfolio_id": object,
    "position_id": object,
    "scenario_id": object,
    "component_type": object,
    "component": object,
    "capped": bool,
    "observations": np.int64,
}


def concat_columns(parts: list[dict], columns: list[str]) -> pd.DataFrame:
    """One long frame from per-day dicts of column arrays (one DataFrame construction, not N).

    Each column gets its dtype from :data:`RESULT_DTYPES` (float64 otherwise); with no parts the
    frame is empty with those dtypes.
    """
    data = {}
    for col in columns:
        dtype = RESULT_DTYPES.get(col, float)
        if parts:
            data[col] = np.concatenate([np.asarray(p[col]) for p in parts]).astype(dtype, copy=False)
        else:
            data[col] = np.array([], dtype=dtype)
    return pd.DataFrame(data, columns=columns)


def trailing_rows(values: np.ndarray, pos: int, window: int) -> np.ndarray:
    """The ``window`` rows of ``values`` ending at and including row ``pos`` (fewer at the start)."""
    return values[max(0, pos - window + 1): pos + 1]


def aligned_returns(returns_wide: pd.DataFrame) -> np.ndarray:
    """The returns of a checked wide frame (sessions × symbols) as a contiguous float array."""
    check_wide_frame(returns_wide, "returns_wide")
    return np.ascontiguousarray(returns_wide.to_numpy(dtype=float, na_value=np.nan))


def aligned_regressors(frame: pd.Series | pd.DataFrame, index: pd.DatetimeIndex, name: str) -> np.ndarray:
    """Regressor values aligned on the returns' session ``index``.

    A session the regressor lacks is NaN (missing), never zero.
    """
    if isinstance(frame, pd.DataFrame):
        check_wide_frame(frame, name)
    elif isinstance(frame, pd.Series):
        if not isinstance(frame.index, pd.DatetimeIndex) or not frame.index.is_unique:
            raise ValueError(f"{name} must be indexed by unique session dates")
    else:
        raise TypeError(f"{name} must be a pandas Series or DataFrame")
    return np.ascontiguousarray(frame.reindex(index).to_numpy(dtype=float, na_value=np.nan))


def validate_window_params(window: int, min_obs: int, cap: float, least: int) -> None:
    """Refuse a window, minimum number of observations (at least ``least``) or cap that cannot work."""
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if int(min_obs) != min_obs or min_obs < least:
        raise ValueError(f"min_obs must be an integer >= {least}, got {min_obs!r}")
    if min_obs > window:
        raise ValueError(f"min_obs ({min_obs}) cannot exceed window ({window})")
    if not (cap > 0):
        raise ValueError(f"cap must be positive, got {cap!r}")


def cap_values(raw: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """``(clip(raw, -cap, cap), |raw| > cap)``: the stored value and whether the cap applied."""
    return np.clip(raw, -cap, cap), np.abs(raw) > cap


def portfolio_day_keys(snapshots: pd.DataFrame) -> pd.DataFrame:
    """``date`` (normalised), ``portfolio_id`` (str) and ``equity`` of the snapshots, one row per
    portfolio-day (a duplicate is an input error)."""
    k = snapshots[["date", "portfolio_id", "equity"]].copy()
    k["date"] = pd.to_datetime(k["date"]).dt.normalize()
    k["portfolio_id"] = k["portfolio_id"].astype(str)
    if k.duplicated(["date", "portfolio_id"]).any():
        raise ValueError("snapshots: duplicate (date, portfolio_id) rows")
    return k.reset_index(drop=True)


def portfolio_day_codes(keys: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Row of ``keys`` (from :func:`portfolio_day_keys`) for each row of ``frame`` by
    (date, portfolio_id); −1 when absent."""
    idx = pd.MultiIndex.from_frame(keys[["date", "portfolio_id"]])
    probe = pd.MultiIndex.from_arrays(
        [pd.to_datetime(frame["date"]).dt.normalize(), frame["portfolio_id"].astype(str)]
    )
    return idx.get_indexer(probe)


def upper_values(values) -> np.ndarray:
    """``str(v).upper()`` of each value as an object array, computed once per distinct value."""
    codes, uniques = pd.factorize(pd.Series(values).astype(str), use_na_sentinel=False)
    return np.array([u.upper() for u in uniques] + [""], dtype=object)[codes]
