"""Per-day statistics of a range, merged over its chunks and batches: what the asset checks of each
day need to judge that day alone (a rate or a coverage of the range can hide a bad day).

Memory is O(days): per day a few counters and at most ``limit`` offender rows per list, never the
rows themselves. Everything is vectorised (one ``groupby`` per chunk or batch, no per-row loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Parts merged before a list grows further (bounds the pending small frames of a long range).
_COMPACT_AFTER = 64


def _day(value) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


@dataclass
class DayStats:
    """Counters per day (summed) and bounded offender lists per day (the first ``limit`` rows of an
    order), each added chunk by chunk or batch by batch."""

    _counts: list = field(default_factory=list)  # frames indexed by day, one column per counter
    _merged: pd.DataFrame | None = None
    _top: dict = field(default_factory=dict)  # name → list of frames with a ``date`` column
    _top_order: dict = field(default_factory=dict)  # name → (columns, ascending, limit)
    _top_final: set = field(default_factory=set)  # names whose kept rows are merged into one frame

    # -- counters ----------------------------------------------------------------------------------
    def count(self, dates, **values) -> None:
        """Add per day the sum of each of ``values`` (booleans count the rows where they hold;
        NaN counts as 0), aligned with ``dates``."""
        dates = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates))).normalize()
        frame = pd.DataFrame({k: np.nan_to_num(np.asarray(v, dtype=float)) for k, v in values.items()},
                             index=dates)
        self.add(frame.groupby(level=0).sum())

    def add(self, per_day: pd.DataFrame | pd.Series, name: str | None = None) -> None:
        """Add counters already summed per day (index: the days; a Series needs ``name``)."""
        if isinstance(per_day, pd.Series):
            per_day = per_day.rename(name or per_day.name).to_frame()
        if per_day.empty:
            return
        per_day = per_day.set_axis(pd.DatetimeIndex(pd.to_datetime(per_day.index)).normalize(), axis=0)
        self._counts.append(per_day.astype(float))
        self._merged = None
        if len(self._counts) > _COMPACT_AFTER:
            self._counts = [self.counts()]

    def counts(self) -> pd.DataFrame:
        """Every counter per day (a counter never added on a day reads 0)."""
        if self._merged is None:
            if not self._counts:
                return pd.DataFrame()
            both = pd.concat(self._counts, axis=0, sort=False).fillna(0.0)
            self._merged = both.groupby(level=0).sum()
            self._counts = [self._merged]
        return self._merged

    def get(self, day, name: str) -> int:
        """Counter ``name`` of ``day`` (0 when nothing was counted)."""
        counts = self.counts()
        day = _day(day)
        if name not in counts.columns or day not in counts.index:
            return 0
        return int(round(counts.at[day, name]))

    def prefixed(self, day, prefix: str) -> dict[str, int]:
        """The day's non-zero counters whose name starts with ``prefix`` (the prefix removed)."""
        counts = self.counts()
        day = _day(day)
        if day not in counts.index:
            return {}
        row = counts.loc[day]
        return {k[len(prefix):]: int(round(v)) for k, v in row.items() if k.startswith(prefix) and v}

    # -- offenders ---------------------------------------------------------------------------------
    def keep(self, name: str, frame: pd.DataFrame, by: list[str] | str, ascending=True, limit: int = 10) -> None:
        """Keep, per day, the first ``limit`` rows of ``frame`` (a ``date`` column) ordered by ``by``."""
        by = [by] if isinstance(by, str) else list(by)
        self._top_order[name] = (by, ascending, limit)
        if frame is None or frame.empty:
            return
        parts = self._top.setdefault(name, [])
        parts.append(self._first(frame, by, ascending, limit))
        self._top_final.discard(name)
        if len(parts) > _COMPACT_AFTER:
            self._top[name] = [self._first(pd.concat(parts, ignore_index=True), by, ascending, limit)]

    @staticmethod
    def _first(frame: pd.DataFrame, by, ascending, limit) -> pd.DataFrame:
        frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.normalize())
        ordered = frame.sort_values(by, ascending=ascending, na_position="last", kind="stable")
        return ordered.groupby("date", sort=False).head(limit)

    def top(self, name: str, day=None) -> pd.DataFrame:
        """The kept rows of ``day`` in order (every day's when ``day`` is None: the first ``limit``
        of the range overall)."""
        parts = self._top.get(name, [])
        if not parts:
            return pd.DataFrame()
        by, ascending, limit = self._top_order[name]
        if name not in self._top_final:
            self._top[name] = [self._first(pd.concat(parts, ignore_index=True), by, ascending, limit)]
            self._top_final.add(name)
        merged = self._top[name][0]
        if day is None:
            return merged.sort_values(by, ascending=ascending, na_position="last", kind="stable").head(limit)
        return merged[merged["date"] == _day(day)].reset_index(drop=True)
