"""The embedded legacy scenario set and the validation of scenario files."""

from __future__ import annotations

import textwrap

import pytest

from sigmasight_assets.scenarios import (
    DEFAULT_SCENARIO_FILE,
    ScenarioConfigError,
    load_scenarios,
    parse_scenarios,
)

# The legacy table (spec/legacy-scenarios.md): id → (name, shocks, category, severity, active)
LEGACY = {
    "market_up_5": ("Market Rally 5%", {"Market": 0.05}, "market", "base", True),
    "market_down_5": ("Market Decline 5%", {"Market": -0.05}, "market", "base", True),
    "market_up_10": ("Market Rally 10%", {"Market": 0.10}, "market", "moderate", True),
    "market_down_10": ("Market Decline 10%", {"Market": -0.10}, "market", "moderate", True),
    "market_crash_35": ("Market Crash 35%", {"Market": -0.35}, "market", "severe", True),
    "market_rally_25": ("Market Rally 25%", {"Market": 0.25}, "market", "severe", True),
    "rates_up_25bp": ("Rates Up 25bp", {"Interest_Rate": 0.0025}, "rates", "mild", True),
    "rates_down_25bp": ("Rates Down 25bp", {"Interest_Rate": -0.0025}, "rates", "mild", True),
    "rates_up_50bp": ("Rates Up 50bp", {"Interest_Rate": 0.005}, "rates", "base", True),
    "rates_down_50bp": ("Rates Down 50bp", {"Interest_Rate": -0.005}, "rates", "base", True),
    "rates_up_100bp": ("Rates Up 100bp", {"Interest_Rate": 0.01}, "rates", "moderate", True),
    "rates_down_100bp": ("Rates Down 100bp", {"Interest_Rate": -0.01}, "rates", "moderate", True),
    "rate_spike_300bp": ("Rate Spike 300bp", {"Interest_Rate": 0.03}, "rates", "severe", True),
    "value_rotation_20": ("Value Rotation 20%", {"Value": 0.20, "Growth": -0.10}, "rotation", "moderate", True),
    "growth_rally_15": ("Growth Rally 15%", {"Growth": 0.15, "Momentum": 0.10}, "rotation", "moderate", True),
    "small_cap_outperformance_10": ("Small Cap Outperformance 10%", {"Size": 0.10}, "rotation", "mild", True),
    "quality_flight_12": ("Flight to Quality 12%", {"Quality": 0.12, "Market": -0.05}, "rotation", "mild", True),
    "vix_spike_150": ("VIX Spike 150%", {"Low_Volatility": -0.25, "Market": -0.15}, "volatility", "severe", True),
    "liquidity_crisis": (
        "Liquidity Crisis", {"Market": -0.20, "Low_Volatility": -0.30, "Quality": 0.15, "Size": -0.10},
        "volatility", "severe", True,
    ),
    "financial_crisis_2008": (
        "2008 Financial Crisis Replay",
        {"Market": -0.45, "Value": -0.30, "Size": -0.25, "Quality": 0.20, "Low_Volatility": -0.35},
        "historical", "extreme", False,
    ),
    "covid_crash_2020": (
        "COVID-19 Crash Replay",
        {"Market": -0.35, "Growth": 0.15, "Value": -0.40, "Size": -0.30, "Quality": 0.10},
        "historical", "extreme", False,
    ),
    "dotcom_crash_2000": (
        "Dot-Com Crash Replay",
        {"Market": -0.45, "Growth": -0.60, "Value": 0.20, "Momentum": -0.50, "Quality": 0.15},
        "historical", "extreme", False,
    ),
}


def test_embedded_legacy_set():
    sset = load_scenarios()
    assert sset.source == str(DEFAULT_SCENARIO_FILE)
    assert len(sset) == 27 and len(sset.active) == 24
    assert sset.rate_duration == 17
    assert [s.id for s in sset][:22] == list(LEGACY)  # file order = spec order, then the replays
    assert {s.id: (s.start.isoformat(), s.end.isoformat(), s.category) for s in sset.active_replays} == REPLAYS
    assert all(s.kind == "shock" and s.start is None for s in sset if s.id in LEGACY)
    for s in sset:
        if s.is_replay:
            assert s.active and dict(s.shocks) == {}
            continue
        name, shocks, category, severity, active = LEGACY[s.id]
        assert (s.name, dict(s.shocks), s.category, s.severity, s.active) == (name, shocks, category, severity, active)
    assert {s.id for s in sset if not s.active} == {"financial_crisis_2008", "covid_crash_2020", "dotcom_crash_2000"}
    assert sset.get("rates_up_100bp").shocks["Interest_Rate"] == 0.01


# The replays of issue 16: id → (start, end, category).
REPLAYS = {
    "replay_lehman_2008": ("2008-09-12", "2008-10-10", "historical"),
    "replay_covid_crash_2020": ("2020-02-19", "2020-03-23", "historical"),
    "replay_rates_growth_2022": ("2022-01-03", "2022-10-12", "historical"),
    "replay_volatility_shock_2018": ("2018-01-26", "2018-02-08", "historical"),
    "replay_august_2015": ("2015-08-17", "2015-08-25", "historical"),
}

GOOD = """\
settings:
  rate_duration: 12.5
scenarios:
  - id: one
    name: One
    category: market
    severity: mild
    active: true
    shocks: {Market: -0.1}
"""


def write(tmp_path, text, name="scen.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_custom_file_and_settings(tmp_path):
    sset = load_scenarios(write(tmp_path, GOOD))
    assert sset.rate_duration == 12.5 and [s.id for s in sset] == ["one"]
    no_settings = parse_scenarios({"scenarios": [dict(id="a", name="A", category="x", severity="base", active=False, shocks={"Size": 0.1})]})
    assert no_settings.rate_duration == 17 and no_settings.active == ()


@pytest.mark.parametrize(
    "old, new, scenario, fld",
    [
        ("shocks: {Market: -0.1}", "shocks: {Markt: -0.1}", "'one'", "shocks.Markt"),
        ("shocks: {Market: -0.1}", "shocks: {Market: lots}", "'one'", "shocks.Market"),
        ("shocks: {Market: -0.1}", "shocks: {Market: -1.5}", "'one'", "shocks.Market"),
        ("shocks: {Market: -0.1}", "shocks: {}", "'one'", "shocks"),
        ("severity: mild", "severity: awful", "'one'", "severity"),
        ("active: true", "active: maybe", "'one'", "active"),
        ("    name: One\n", "", "'one'", "name"),
        ("    active: true\n", "    active: true\n    shock: {Size: 1}\n", "'one'", "shock"),
        ("id: one", "id: One Two", "#1", "id"),
        ("rate_duration: 12.5", "rate_duration: -3", "settings", "settings.rate_duration"),
    ],
)
def test_malformed_file_names_file_scenario_and_field(tmp_path, old, new, scenario, fld):
    assert old in GOOD
    p = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioConfigError) as err:
        load_scenarios(p)
    msg = str(err.value)
    assert str(p) in msg and scenario in msg and f"field '{fld}'" in msg, msg


REPLAY = """\
scenarios:
  - id: crash
    name: Crash
    category: historical
    severity: extreme
    active: true
    kind: replay
    start: 2020-02-19
    end: 2020-03-23
"""


def test_replay_scenario_has_a_dated_window(tmp_path):
    sset = load_scenarios(write(tmp_path, REPLAY))
    [scn] = sset.active_replays
    assert (scn.kind, scn.start.isoformat(), scn.end.isoformat(), dict(scn.shocks)) == (
        "replay", "2020-02-19", "2020-03-23", {})
    quoted = load_scenarios(write(tmp_path, REPLAY.replace("2020-02-19", "'2020-02-19'"), "quoted.yaml"))
    assert quoted.get("crash").start == scn.start


@pytest.mark.parametrize(
    "old, new, fld, words",
    [
        ("start: 2020-02-19", "start: 2020-02-17", "start", "not an NYSE trading day"),  # Presidents' Day
        ("end: 2020-03-23", "end: 2020-03-21", "end", "not an NYSE trading day"),  # a Saturday
        ("end: 2020-03-23", "end: 2020-02-19", "end", "must be after start"),
        ("end: 2020-03-23", "end: 2020-02-18", "end", "must be after start"),
        ("start: 2020-02-19", "start: next week", "start", "must be a date"),
        ("    start: 2020-02-19\n", "", "start", "is required"),
        ("kind: replay", "kind: replay\n    shocks: {Market: -0.3}", "shocks", "no shocks"),
        ("kind: replay", "kind: rerun", "kind", "must be one of"),
        ("kind: replay", "kind: shock", "start", "only a replay"),
    ],
)
def test_malformed_replay_names_file_scenario_and_field(tmp_path, old, new, fld, words):
    assert old in REPLAY
    p = write(tmp_path, REPLAY.replace(old, new))
    with pytest.raises(ScenarioConfigError) as err:
        load_scenarios(p)
    msg = str(err.value)
    assert str(p) in msg and "scenario 'crash' (#1)" in msg and f"field '{fld}'" in msg and words in msg, msg


def test_duplicate_id(tmp_path):
    text = GOOD + GOOD.split("scenarios:\n")[1].replace("name: One", "name: Again")
    with pytest.raises(ScenarioConfigError, match=r"scenario 'one' \(#2\): field 'id': duplicate"):
        load_scenarios(write(tmp_path, text))


def test_yaml_syntax_error_and_missing_file(tmp_path):
    p = write(tmp_path, "scenarios:\n  - id: [unclosed\n")
    with pytest.raises(ScenarioConfigError, match=r"scen\.yaml: invalid YAML at line \d+"):
        load_scenarios(p)
    with pytest.raises(ScenarioConfigError, match="cannot read scenario file"):
        load_scenarios(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioConfigError, match="'scenarios': must be a non-empty list"):
        load_scenarios(write(tmp_path, "settings: {rate_duration: 17}\n", "empty.yaml"))
