"""``sigmasight backfill`` before it reaches Dagster: the days it submits (trading days only, a bound
on a holiday moves inward), the per-asset ranges it asks for, and its one-line refusals. The
submission itself, executed by a real daemon, is in ``test_graphql_ui.py``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sigmasight_assets.cli import main
from sigmasight_assets.cli.backfill import backfill_days, launch_params


def test_the_days_are_the_trading_days_of_the_range():
    # 2025-01-09: national day of mourning; 11-12: a weekend.
    assert backfill_days("2025-01-09", "2025-01-13") == ["2025-01-10", "2025-01-13"]
    assert backfill_days("2025-01-11", "2025-01-12") == []


def test_every_asset_gets_exactly_the_range():
    params = launch_params(["2025-01-10", "2025-01-13"], ["prices", "stress_results"], "t")
    assert params["partitionsByAssets"] == [
        {"assetKey": {"path": [a]}, "partitions": {"range": {"start": "2025-01-10", "end": "2025-01-13"}}}
        for a in ("prices", "stress_results")]
    assert "partitionNames" not in params and "selector" not in params  # no downstream expansion, no job


def test_refusals_name_the_problem_in_one_line():
    runner = CliRunner()
    out = runner.invoke(main, ["backfill", "--from", "2025-01-11", "--to", "2025-01-12"])
    assert out.exit_code == 2 and "no trading day in 2025-01-11..2025-01-12" in out.output
    out = runner.invoke(main, ["backfill", "--from", "2025-01-06", "--to", "2025-01-10", "--select", "nope"])
    assert out.exit_code == 2 and "unknown asset(s) ['nope']" in out.output and "symbol_betas" in out.output


def test_an_in_process_range_starting_on_a_holiday_is_snapped_to_trading_days():
    from sigmasight_assets.local_runs import snap_range

    # 2026-01-19 is Martin Luther King Jr. Day, 2026-01-24 a Saturday.
    assert snap_range("2026-01-19", "2026-01-24") == ("2026-01-20", "2026-01-23")
    with pytest.raises(ValueError, match="no NYSE trading day in 2026-01-17..2026-01-19"):
        snap_range("2026-01-17", "2026-01-19")
