"""Wrong settings fail before anything is written, with one line naming the setting (issue 13,
findings 3 and 4).

Each bad setting is tried the way a user meets it: a ``sigmasight`` command (exit code 2, exactly one
line on stderr, no warehouse file created), :func:`preflight.check_settings` (what the definitions
call when they load), and, once, ``dagster definitions validate`` in a subprocess (the code location
refuses to load, the message is the one line). The warehouse URL errors are tried against the real
PostgreSQL server: a database that does not exist, a port nobody listens on, an unknown user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sigmasight_assets.defs import preflight
from sigmasight_assets.cli import main
from sigmasight_assets.warehouse.engine import WarehouseURLError, check_url

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("SIGMASIGHT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

MISSING_SHOCK = """\
scenarios:
  - id: market_down
    name: Market down
    category: market
    severity: moderate
    active: true
"""
TEXT_SHOCK = MISSING_SHOCK + "    shocks: {Market: lots}\n"


def scenario_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stress.yaml"
    path.write_text(text)
    return str(path)


BAD_SETTINGS = [
    ("SIGMASIGHT_WORKERS", "abc",
     "SIGMASIGHT_WORKERS='abc' is no longer a setting (no process pool any more: parallelism is Dagster's "
     "(max_concurrent_runs in dagster.yaml, SIGMASIGHT_PARTITIONS_PER_RUN)); unset it"),
    ("SIGMASIGHT_PARTITIONS_PER_RUN", "abc", "SIGMASIGHT_PARTITIONS_PER_RUN='abc' is not an integer"),
    ("SIGMASIGHT_BATCH_PORTFOLIO_DAYS", "0", "SIGMASIGHT_BATCH_PORTFOLIO_DAYS='0' must be positive"),
    ("SIGMASIGHT_NUMERIC_THREADS", "all", "SIGMASIGHT_NUMERIC_THREADS='all' is not an integer"),
    ("SIGMASIGHT_MARKET_DATA", "nope", "SIGMASIGHT_MARKET_DATA='nope': unknown provider 'nope' (expected synthetic, "
                                       "yfinance or csv:DIR, comma-separated for a fallback chain)"),
    ("SIGMASIGHT_MARKET_DATA", "yfinance,synthetic",
     "SIGMASIGHT_MARKET_DATA='yfinance,synthetic' would mix real (yfinance) and synthetic prices in one warehouse; "
     "set SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK=1 to allow it"),
    ("SIGMASIGHT_SYNTHETIC_SEED", "x7", "SIGMASIGHT_SYNTHETIC_SEED='x7' is not an integer"),
    ("SIGMASIGHT_START_DATE", "2000-13-01", "SIGMASIGHT_START_DATE='2000-13-01' is not an ISO date (YYYY-MM-DD)"),
    ("SIGMASIGHT_KILL_AFTER_MINUTES", "soon",
     "SIGMASIGHT_KILL_AFTER_MINUTES='soon' is not a number of minutes (0 or unset: no limit)"),
    ("SIGMASIGHT_MAX_RUNTIME_MINUTES", "-5", "SIGMASIGHT_MAX_RUNTIME_MINUTES='-5' must be positive"),
    ("SIGMASIGHT_FRESHNESS_GRACE_MINUTES", "2h",
     "SIGMASIGHT_FRESHNESS_GRACE_MINUTES='2h' is not a number of minutes"),
    ("SIGMASIGHT_SCENARIOS_FILE", "/no/such/stress.yaml", "SIGMASIGHT_SCENARIOS_FILE='/no/such/stress.yaml' is not a file"),
    ("SIGMASIGHT_DATABASE_URL", "garbage",
     "SIGMASIGHT_DATABASE_URL='garbage' is not a database URL (e.g. postgresql+psycopg://user@host:5432/sigmasight "
     "or sqlite:////path/to/warehouse.sqlite)"),
]


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("name,value,message", BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS])
def test_a_bad_setting_stops_the_command_with_one_line_and_writes_nothing(name, value, message, tmp_warehouse_url,
                                                                           monkeypatch):
    monkeypatch.setenv(name, value)
    warehouse_file = Path(tmp_warehouse_url.removeprefix("sqlite:///"))
    for args in (["load-portfolios", "--sample"], ["demo", "--days", "3"], ["show", "P1"], ["list"],
                 ["backfill", "--from", "2025-01-02", "--to", "2025-01-03"]):
        result = CliRunner().invoke(main, args)
        assert one_line_error(result) == message, args
    assert not warehouse_file.exists()  # nothing was written, not even an empty warehouse


@pytest.mark.parametrize("name,value,message", BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS])
def test_the_definitions_check_names_the_setting_in_one_line(name, value, message, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(preflight.SettingsError) as info:
        preflight.check_settings()
    assert str(info.value) == message


@pytest.mark.parametrize("text,field", [(MISSING_SHOCK, "field 'shocks': must be a non-empty mapping"),
                                        (TEXT_SHOCK, "field 'shocks.Market'")])
def test_a_bad_scenario_file_fails_at_start(text, field, tmp_path, monkeypatch):
    path = scenario_file(tmp_path, text)
    monkeypatch.setenv("SIGMASIGHT_SCENARIOS_FILE", path)
    with pytest.raises(preflight.SettingsError) as info:
        preflight.check_settings()
    message = str(info.value)
    assert message.startswith(f"SIGMASIGHT_SCENARIOS_FILE: {path}: scenario 'market_down' (#1): {field}")
    assert "\n" not in message
    assert one_line_error(CliRunner().invoke(main, ["list"])) == message


def test_help_needs_no_valid_settings(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_MARKET_DATA", "nope")
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_dagster_refuses_to_load_the_code_location_with_the_one_line(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SIGMASIGHT_PARTITIONS_PER_RUN": "abc",
           "SIGMASIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'warehouse.sqlite'}"}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate", "-m", "sigmasight_assets.definitions"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "SettingsError: SIGMASIGHT_PARTITIONS_PER_RUN='abc' is not an integer" in proc.stdout + proc.stderr
    assert not (tmp_path / "warehouse.sqlite").exists()


def test_a_sqlite_url_in_a_missing_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'nope' / 'w.sqlite'}"
    with pytest.raises(WarehouseURLError) as info:
        check_url(url)
    assert str(info.value) == (f"SIGMASIGHT_DATABASE_URL={url!r}: the directory {tmp_path / 'nope'} does not exist "
                               "(create it, or point the URL at an existing directory)")


def test_an_unknown_driver_and_a_password_never_shown():
    with pytest.raises(WarehouseURLError) as info:
        check_url("mysql+nodriver://u:hunter2@h/db", "--database-url")
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("--database-url='mysql+nodriver://u:***@h/db': unknown database driver")


# -- the real PostgreSQL server ----------------------------------------------------------------------
def server_or_skip() -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(PG_ADMIN_URL)
    try:
        psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database or "postgres",
                        connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")


def pg(database: str, port: int | None = None, user: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(PG_ADMIN_URL).set(database=database)
    if port is not None:
        u = u.set(port=port)
    if user is not None:
        u = u.set(username=user)
    return u.render_as_string(hide_password=False)


@pytest.mark.postgres
def test_a_postgres_database_that_does_not_exist(monkeypatch):
    server_or_skip()
    url = pg("sigmasight_no_such_db")
    host = f"{pg('x').split('@')[1].split('/')[0]}"
    expected = (f"SIGMASIGHT_DATABASE_URL={url!r}: database 'sigmasight_no_such_db' does not exist on {host} "
                "(create it, e.g. `createdb sigmasight_no_such_db`, or name an existing database)")
    with pytest.raises(WarehouseURLError) as info:
        check_url(url)
    assert str(info.value) == expected
    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", url)
    with pytest.raises(preflight.SettingsError) as info:
        preflight.check_settings()
    assert str(info.value) == expected
    for args in (["load-portfolios", "--sample"], ["list"], ["symbol-status", "SPY"], ["warehouse", "version"]):
        assert one_line_error(CliRunner().invoke(main, args)) == expected, args


@pytest.mark.postgres
def test_a_postgres_server_that_cannot_be_reached_or_an_unknown_user():
    server_or_skip()
    url = pg("postgres", port=1)
    with pytest.raises(WarehouseURLError) as info:
        check_url(url)
    assert str(info.value).startswith(f"SIGMASIGHT_DATABASE_URL={url!r}: cannot connect to the server at ")
    assert "Connection refused" in str(info.value) and "\n" not in str(info.value)
    url = pg("postgres", user="sigmasight_nobody")
    with pytest.raises(WarehouseURLError) as info:
        check_url(url)
    assert "has no user 'sigmasight_nobody'" in str(info.value)


def test_the_warehouse_resource_names_its_setting_in_a_step(tmp_path):
    """A step whose warehouse URL cannot be used fails with the one line (no driver traceback text)."""
    from sigmasight_assets.defs.resources import WarehouseResource

    url = f"sqlite:///{tmp_path / 'missing' / 'w.sqlite'}"
    with pytest.raises(WarehouseURLError) as info:
        WarehouseResource(url=url).get()
    assert str(info.value).startswith(f"the warehouse resource's url={url!r}: the directory")


# -- run monitoring (issue 13, finding 5) -------------------------------------------------------------
@pytest.mark.parametrize("yaml_file", ["dagster.yaml", "deploy/dagster.postgres.yaml"])
def test_run_monitoring_marks_a_dead_run_failed(yaml_file, tmp_path, monkeypatch):
    """Both instance configurations turn run monitoring on with a runtime backstop: the default run
    launcher cannot see a killed worker, so a run still STARTED after 2 hours is marked failed."""
    import yaml

    config = yaml.safe_load((REPO / yaml_file).read_text())
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_runtime_seconds"] == 7200
    assert monitoring["start_timeout_seconds"] == 300 and monitoring["max_resume_run_attempts"] == 0
    if yaml_file == "dagster.yaml":  # the embedded instance loads with it
        from dagster import DagsterInstance

        (tmp_path / "dagster.yaml").write_text((REPO / yaml_file).read_text())
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        with DagsterInstance.get() as instance:
            assert instance.run_monitoring_enabled
            assert instance.run_monitoring_max_runtime_seconds == 7200
            assert instance.run_monitoring_start_timeout_seconds == 300


@pytest.mark.parametrize("setting, want", [(None, 1), ("2", 2)])
def test_loading_the_code_location_caps_the_numeric_libraries_threads(setting, want):
    """Runs side by side are the parallelism: the code location's processes use
    ``SIGMASIGHT_NUMERIC_THREADS`` (default 1) BLAS threads, for the libraries loaded before the
    definitions (numpy here) and, through the environment, for the processes it starts."""
    env = {k: v for k, v in os.environ.items() if k not in ("SIGMASIGHT_NUMERIC_THREADS", "OPENBLAS_NUM_THREADS")}
    if setting:
        env["SIGMASIGHT_NUMERIC_THREADS"] = setting
    code = ("import os, numpy, json; from threadpoolctl import threadpool_info; "
            "import sigmasight_assets.definitions; "
            "print(json.dumps([sorted({i['num_threads'] for i in threadpool_info()}), os.environ['OPENBLAS_NUM_THREADS']]))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    threads, inherited = json.loads(proc.stdout.strip().splitlines()[-1])
    assert threads == [want] and inherited == str(want)
