"""Stress scenario configuration: load and validate the scenario YAML.

File format (see ``data/stress_scenarios.yaml``, the embedded legacy set)::

    settings:
      rate_duration: 17          # optional, > 0; TLT return = −rate_duration × yield change
    scenarios:
      - id: market_down_10       # lower_snake_case, unique
        name: Market Decline 10%
        category: market         # lower_snake_case word
        severity: moderate       # mild | base | moderate | severe | extreme
        active: true             # a YAML boolean
        shocks: {Market: -0.10}  # factor name → finite decimal move, at least one
        description: ...         # optional
      - id: replay_covid_crash_2020
        name: COVID-19 crash (replay)
        category: historical
        severity: extreme
        active: true
        kind: replay             # optional: shock (default) | replay
        start: 2020-02-19        # replay: the base day (the window's first close), an NYSE session
        end: 2020-03-23          # replay: the last day, an NYSE session after start

A ``replay`` scenario has no ``shocks``: it applies the real move of the window, from the close of
``start`` to the close of ``end`` (``calc/replay.py``), to the day's holdings. A shock scenario has
no ``start``/``end``.

Any problem raises :class:`ScenarioConfigError` whose message names the file, the scenario (id
and position) and the field, e.g. ``stress.yaml: scenario 'bad' (#3): field 'shocks.Markt':
unknown factor …``. Nothing is half-loaded: either every scenario is valid or none is returned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType

import yaml

from . import calendar
from .calc.stress import DEFAULT_RATE_DURATION, RATE_FACTOR, REPLAY_KIND, SHOCK_FACTOR_TO_ETF

DEFAULT_SCENARIO_FILE = Path(__file__).resolve().parent / "data" / "stress_scenarios.yaml"
SEVERITIES: tuple[str, ...] = ("mild", "base", "moderate", "severe", "extreme")
SHOCK_FACTORS: tuple[str, ...] = tuple(SHOCK_FACTOR_TO_ETF)
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
SHOCK_KIND = "shock"
KINDS: tuple[str, ...] = (SHOCK_KIND, REPLAY_KIND)
_SCENARIO_KEYS = {"id", "name", "category", "severity", "active", "shocks", "description", "kind", "start", "end"}
_REQUIRED = ("id", "name", "category", "severity", "active")
_SETTINGS_KEYS = {"rate_duration"}


class ScenarioConfigError(ValueError):
    """The scenario file is malformed; the message names file, scenario and field."""


@dataclass(frozen=True)
class Scenario:
    """One stress scenario. ``shocks`` maps factor names (``Market`` …) to decimal moves;
    ``Interest_Rate`` is a yield change (+0.01 = +100bp). A ``replay`` (``kind``) has no shocks and
    a dated window ``[start, end]`` of NYSE sessions instead."""

    id: str
    name: str
    category: str
    severity: str
    shocks: Mapping[str, float]
    active: bool = True
    description: str | None = None
    kind: str = SHOCK_KIND
    start: date | None = None
    end: date | None = None

    @property
    def is_replay(self) -> bool:
        return self.kind == REPLAY_KIND


@dataclass(frozen=True)
class ScenarioSet:
    """All scenarios of a file, in file order, plus the settings."""

    scenarios: tuple[Scenario, ...]
    rate_duration: float = DEFAULT_RATE_DURATION
    source: str = "<memory>"
    _by_id: Mapping[str, Scenario] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_id", MappingProxyType({s.id: s for s in self.scenarios}))

    @property
    def active(self) -> tuple[Scenario, ...]:
        return tuple(s for s in self.scenarios if s.active)

    @property
    def active_replays(self) -> tuple[Scenario, ...]:
        """The active ``replay`` scenarios, in file order."""
        return tuple(s for s in self.active if s.is_replay)

    def __len__(self) -> int:
        return len(self.scenarios)

    def __iter__(self):
        return iter(self.scenarios)

    def get(self, scenario_id: str) -> Scenario:
        return self._by_id[scenario_id]


def _fail(source: str, where: str, fld: str, msg: str):
    raise ScenarioConfigError(f"{source}: {where}: field {fld!r}: {msg}")


def _number(value) -> float | None:
    # bool is an int subclass in Python; `true` is not a number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _parse_settings(raw, source: str) -> float:
    if raw is None:
        return DEFAULT_RATE_DURATION
    if not isinstance(raw, Mapping):
        _fail(source, "settings", "settings", f"must be a mapping, got {type(raw).__name__}")
    extra = sorted(set(map(str, raw)) - _SETTINGS_KEYS)
    if extra:
        _fail(source, "settings", f"settings.{extra[0]}", f"unknown setting; expected {sorted(_SETTINGS_KEYS)}")
    if "rate_duration" not in raw:
        return DEFAULT_RATE_DURATION
    d = _number(raw["rate_duration"])
    if d is None or d <= 0:
        _fail(source, "settings", "settings.rate_duration", f"must be a positive number, got {raw['rate_duration']!r}")
    return d


def _parse_scenario(raw, pos: int, source: str, seen: set[str]) -> Scenario:
    where = f"scenario #{pos}"
    if not isinstance(raw, Mapping):
        _fail(source, where, "<scenario>", f"must be a mapping, got {type(raw).__name__}")
    sid = raw.get("id")
    if isinstance(sid, str) and sid:
        where = f"scenario {sid!r} (#{pos})"
    for key in _REQUIRED:
        if key not in raw or raw[key] is None:
            _fail(source, where, key, "is required")
    extra = sorted(set(map(str, raw)) - _SCENARIO_KEYS)
    if extra:
        _fail(source, where, extra[0], f"unknown field; expected {sorted(_SCENARIO_KEYS)}")
    if not isinstance(sid, str) or not _ID.match(sid):
        _fail(source, where, "id", f"must be a lower_snake_case string, got {sid!r}")
    if sid in seen:
        _fail(source, where, "id", "duplicate scenario id")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        _fail(source, where, "name", f"must be a non-empty string, got {name!r}")
    category = raw["category"]
    if not isinstance(category, str) or not _ID.match(category):
        _fail(source, where, "category", f"must be a lower_snake_case word, got {category!r}")
    severity = raw["severity"]
    if severity not in SEVERITIES:
        _fail(source, where, "severity", f"must be one of {list(SEVERITIES)}, got {severity!r}")
    active = raw["active"]
    if not isinstance(active, bool):
        _fail(source, where, "active", f"must be true or false, got {active!r}")
    kind = raw.get("kind", SHOCK_KIND)
    if kind not in KINDS:
        _fail(source, where, "kind", f"must be one of {list(KINDS)}, got {kind!r}")
    shocks: dict[str, float] = {}
    start = end = None
    if kind == REPLAY_KIND:
        if raw.get("shocks") is not None:
            _fail(source, where, "shocks", "a replay scenario applies its window's real moves: no shocks")
        start = _session(raw, "start", source, where)
        end = _session(raw, "end", source, where)
        if not start < end:
            _fail(source, where, "end", f"must be after start ({start.isoformat()}), got {end.isoformat()}")
    else:
        for fld in ("start", "end"):
            if raw.get(fld) is not None:
                _fail(source, where, fld, "only a replay scenario (kind: replay) has a dated window")
        shocks = _shocks(raw.get("shocks"), source, where)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        _fail(source, where, "description", "must be a string")
    seen.add(sid)
    return Scenario(sid, name.strip(), category, severity, MappingProxyType(shocks), active, description, kind,
                    start, end)


def _shocks(shocks_raw, source: str, where: str) -> dict[str, float]:
    if not isinstance(shocks_raw, Mapping) or not shocks_raw:
        _fail(source, where, "shocks", "must be a non-empty mapping of factor name to decimal move")
    shocks: dict[str, float] = {}
    for factor, value in shocks_raw.items():
        fld = f"shocks.{factor}"
        if factor not in SHOCK_FACTOR_TO_ETF:
            _fail(source, where, fld, f"unknown factor; expected one of {list(SHOCK_FACTORS)}")
        v = _number(value)
        if v is None:
            _fail(source, where, fld, f"must be a finite number, got {value!r}")
        if factor != RATE_FACTOR and v <= -1.0:
            _fail(source, where, fld, f"a return cannot be -100% or below, got {v!r}")
        shocks[factor] = v
    return shocks


def _session(raw: Mapping, fld: str, source: str, where: str) -> date:
    """``raw[fld]`` as a date (YAML date or ISO text) that is an NYSE session."""
    value = raw.get(fld)
    if value is None:
        _fail(source, where, fld, "is required for a replay scenario (an NYSE session, YYYY-MM-DD)")
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            _fail(source, where, fld, f"must be a date YYYY-MM-DD, got {value!r}")
    if not isinstance(value, date):
        _fail(source, where, fld, f"must be a date YYYY-MM-DD, got {value!r}")
    if not calendar.is_session(value):
        _fail(source, where, fld, f"{value.isoformat()} is not an NYSE trading day")
    return value


def parse_scenarios(data, source: str = "<memory>") -> ScenarioSet:
    """Validate an already-parsed YAML document (see module docstring for the format)."""
    if not isinstance(data, Mapping):
        _fail(source, "document", "<root>", "must be a mapping with 'scenarios' (and optional 'settings')")
    extra = sorted(set(map(str, data)) - {"settings", "scenarios"})
    if extra:
        _fail(source, "document", extra[0], "unknown top-level key; expected 'settings' and 'scenarios'")
    duration = _parse_settings(data.get("settings"), source)
    items = data.get("scenarios")
    if not isinstance(items, list) or not items:
        _fail(source, "document", "scenarios", "must be a non-empty list")
    seen: set[str] = set()
    scns = tuple(_parse_scenario(raw, i + 1, source, seen) for i, raw in enumerate(items))
    return ScenarioSet(scns, duration, source)


def load_scenarios(path: str | Path | None = None) -> ScenarioSet:
    """Load and validate a scenario file (default: the embedded legacy set).

    Raises
    ------
    ScenarioConfigError
        Unreadable file, YAML syntax error (with line and column) or invalid content (naming the
        scenario and field).
    """
    p = Path(path) if path is not None else DEFAULT_SCENARIO_FILE
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioConfigError(f"{source}: cannot read scenario file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioConfigError(f"{source}: invalid YAML{loc}: {problem}") from exc
    return parse_scenarios(data, source)
