"""Frame helpers shared by the calc modules (one implementation of building long result frames)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["COLUMN_DTYPES", "concat_parts"]

#: dtype of the long-frame columns that are not float; every other column is float64.
COLUMN_DTYPES: dict[str, object] = {
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


def concat_parts(parts: list[dict], columns: list[str], dtypes: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Build one long frame from per-day column arrays (one DataFrame construction, not N).

    Parameters
    ----------
    parts : list of dict
        Each maps every name of ``columns`` to a 1-D array; all arrays of a part have one length.
    columns : list of str
        Output columns, in order.
    dtypes : mapping, optional
        Column dtypes overriding :data:`COLUMN_DTYPES` (columns in neither are float64).

    Returns
    -------
    pandas.DataFrame
        The parts stacked in order; an empty frame with the right dtypes when ``parts`` is empty.
    """
    types = {**COLUMN_DTYPES, **(dtypes or {})}
    data = {}
    for col in columns:
        dtype = types.get(col, float)
        if parts:
            data[col] = np.concatenate([np.asarray(p[col]) for p in parts]).astype(dtype, copy=False)
        else:
            data[col] = np.array([], dtype=dtype)
    return pd.DataFrame(data, columns=columns)
