"""`meterline events load` (NDJSON and CSV), settings, alerts and silent meters, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from meterline.cli import app
from meterline.runtime import Runtime
from meterline.store.models import Message, MeterState
from tests.support.meter_fleet import Fleet, make_fleet

runner = CliRunner()


@pytest.fixture
def fleet(runtime: Runtime) -> Fleet:
    with runtime.sessions() as s, s.begin():
        return make_fleet(s)


def cli(database_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"METERLINE_DATABASE_URL": database_url})


def ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def test_an_ndjson_file_loads_in_batches_with_rejected_lines_named(
    database_url, runtime, fleet, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("meterline.cli_events.CHUNK", 3)  # several batches, line offsets kept
    low = json.dumps({"type": "balance", "meter": "SN-1", "at": ago(20), "balance": 40_00})
    lines = [
        json.dumps({"type": "balance", "meter": "SN-1", "at": ago(30), "balance": 500_00}),
        low,
        "",
        json.dumps({"type": "demand", "meter": "SN-1", "at": ago(20), "kw": "-1"}),
        "not json at all",
        low,  # a repeat, in the next batch
        json.dumps({"type": "power", "meter": "NOPE", "at": ago(5), "state": "off"}),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli(database_url, "events", "load", str(path), "--tenant", "jaipur", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (2, 1, 2)
    assert report["unknown_meters"] == 1 and report["unknown_serials"] == ["NOPE"]
    assert [(e["line"], e["reason"]) for e in report["errors"]] == [
        (4, "kw: -1 is negative"),
        (5, "not JSON (Expecting value at column 1)"),
    ]
    with runtime.sessions() as s:
        assert [m.kind for m in s.scalars(select(Message))] == ["low_balance"]
    text = cli(database_url, "events", "load", str(path), "--tenant", "jaipur")
    assert text.exit_code == 0
    assert "1 accepted (1 out of order), 2 duplicates, 2 rejected, 1 for unknown" in text.output
    assert "line 4: kw: -1 is negative" in text.output


def test_a_csv_file_with_the_same_field_names_loads(
    database_url, runtime, fleet, tmp_path: Path
) -> None:
    path = tmp_path / "readings.csv"
    path.write_text(
        "type,meter,at,value,unit,kw,balance\n"
        f"reading,SN-2,{ago(60)},1500.5,kWh,,\n"
        f"demand,SN-2,{ago(60)},,,2.5,\n"
        f"reading,W-1,{ago(60)},33.1,kWh,,\n"
        f"balance,SN-2,{ago(50)},,,,12.5\n",
        encoding="utf-8",
    )
    result = cli(database_url, "events", "load", str(path), "--tenant", "jaipur", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["accepted"] == 2
    assert [(e["line"], e["reason"]) for e in report["errors"]] == [
        (4, "unit: kWh does not fit water meter W-1"),
        (5, "balance: '12.5' is not a whole number (minor units)"),
    ]
    with runtime.sessions() as s:
        state = s.scalars(select(MeterState).where(MeterState.last_seen.is_not(None))).one()
        assert str(state.reading_value) == "1500.500" and str(state.demand_kw) == "2.500"


def test_settings_alerts_and_silent_meters_from_the_command_line(
    database_url, fleet, tmp_path: Path
) -> None:
    shown = cli(
        database_url,
        "events",
        "settings",
        "--tenant",
        "jaipur",
        "--low-balance",
        "20000",
        "--percent-levels",
        "30,10",
        "--silent-after",
        "600",
        "--grace",
        "en=Emergency credit of 50 is on",
    )
    assert shown.exit_code == 0, shown.output
    settings = json.loads(shown.output)
    assert settings["low_balance_minor"] == 200_00 and settings["percent_levels"] == [30, 10]
    assert settings["grace_text"] == {"en": "Emergency credit of 50 is on"}
    bad = cli(database_url, "events", "settings", "--tenant", "jaipur", "--percent-levels", "150")
    assert bad.exit_code == 1 and "not a percentage" in bad.output
    path = tmp_path / "e.ndjson"
    path.write_text(
        json.dumps({"type": "balance", "meter": "SN-2", "at": ago(30), "balance": 150_00}) + "\n"
    )
    assert cli(database_url, "events", "load", str(path), "--tenant", "jaipur").exit_code == 0
    alerts = cli(database_url, "events", "alerts", "--tenant", "jaipur", "--open")
    (row,) = [json.loads(line) for line in alerts.output.splitlines()]
    assert (row["kind"], row["meter"], row["details"]["threshold"]) == (
        "low_balance",
        "SN-2",
        200_00,
    )
    silent = cli(database_url, "events", "silent", "--tenant", "jaipur")
    assert silent.output.split("\t")[:2] == ["SN-2", "AC-2"]
    missing = cli(database_url, "events", "load", str(path), "--tenant", "nowhere")
    assert missing.exit_code == 1 and "no tenant 'nowhere'" in missing.output
