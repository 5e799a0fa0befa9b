"""The validated warehouse write of every pipeline.

Thin wrappers over :mod:`sigmasight_assets.warehouse.schemas` that import pandera on first use (a
definitions load that writes nothing does not pay for it).
"""

from __future__ import annotations

import pandas as pd


def write_partitions(wh, table_name: str, frame: pd.DataFrame, start, end, **kwargs) -> int:
    """Validate ``frame`` with the table's schema, then replace rows dated [start, end] (and, with
    ``keys=``, only those keys' rows) in one transaction; returns the rows inserted."""
    from ..warehouse import schemas

    return schemas.write_validated(wh, table_name, frame, start, end, **kwargs)
