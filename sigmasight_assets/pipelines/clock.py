"""Where a chunk's time goes: read, compute and write seconds of the range pipelines."""

from __future__ import annotations

import time


class PhaseClock:
    """Seconds per phase of one chunk: ``lap(phase)`` charges the time since the previous lap (or
    since the clock started) to ``phase``."""

    PHASES = ("read", "compute", "write")

    def __init__(self) -> None:
        self.seconds = {p: 0.0 for p in self.PHASES}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._t
        self._t = now

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}
