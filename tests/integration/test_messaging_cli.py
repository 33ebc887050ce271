"""The messaging commands as a person runs them: estimate, channel, credit, send, worker."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from meterline.cli import app

runner = CliRunner()


def cli(database_url: str | None, *args: str) -> tuple[int, str, str]:
    env = {"METERLINE_DATABASE_URL": database_url} if database_url else {}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_estimate_without_a_tenant() -> None:
    code, out, _ = cli(None, "sms", "estimate", "Hello {world}", "--json")
    body = json.loads(out)
    assert code == 0
    assert (body["encoding"], body["characters"], body["segments"]) == ("GSM-7", 13, 1)
    code, out, _ = cli(None, "sms", "estimate", "বিদ্যুৎ বিল " * 7)
    assert code == 0 and out.startswith("UCS-2: 84 characters, 2 segment(s)")
    code, _, err = cli(None, "sms", "estimate", "x" * 1600)
    assert code == 2 and "needs 11 SMS parts; the maximum is 10" in err


def test_channel_credit_send_and_worker(database_url: str) -> None:
    assert (
        cli(
            database_url,
            "tenant",
            "create",
            "coop-one",
            "--name",
            "Coop",
            "--country",
            "BD",
            "--currency",
            "BDT",
            "--timezone",
            "Asia/Dhaka",
        )[0]
        == 0
    )
    code, out, err = cli(
        database_url, "channel", "add", "phones", "--type", "sandbox", "--tenant", "coop-one"
    )
    assert code == 0, err
    assert json.loads(out)["callback_url"].endswith(f"/api/v1/callbacks/{json.loads(out)['id']}")
    code, _, err = cli(
        database_url,
        "channel",
        "add",
        "bad",
        "--type",
        "sms_http",
        "--tenant",
        "coop-one",
        "--config",
        '{"url": "x", "auth_token": "env:NOPE_X"}',
    )
    assert code == 1 and "NOPE_X" in err
    assert (
        cli(database_url, "credit", "pricing", "--tenant", "coop-one", "--sms-price", "0.40")[0]
        == 0
    )
    # No quiet hours: the worker below sends on the real clock, at any hour CI runs it.
    quiet_off = ("--start", "00:00", "--end", "00:00")
    assert cli(database_url, "tenant", "quiet-hours", "coop-one", *quiet_off)[0] == 0
    code, _, err = cli(database_url, "send", "01712345678", "Meeting at 5", "--tenant", "coop-one")
    assert code == 1 and "not enough messaging credit" in err
    code, out, _ = cli(database_url, "credit", "topup", "10", "--tenant", "coop-one")
    assert code == 0 and "balance 10.00 BDT" in out
    code, out, err = cli(
        database_url, "send", "01712345678", "Meeting at 5", "--tenant", "coop-one", "--key", "k1"
    )
    assert code == 0, err
    sent = json.loads(out)
    assert (sent["status"], sent["encoding"], sent["cost_minor"]) == ("queued", "GSM-7", 40)
    code, out, _ = cli(database_url, "worker", "--once")
    assert code == 0 and json.loads(out)["delivered"] == 1
    code, out, _ = cli(
        database_url, "sms", "estimate", "Meeting at 5", "--tenant", "coop-one", "--json"
    )
    assert json.loads(out)["cost"] == "0.40 BDT"


def test_quiet_hours_from_the_command_line(database_url: str) -> None:
    assert (
        cli(
            database_url,
            "tenant",
            "create",
            "coop-two",
            "--name",
            "Coop",
            "--country",
            "RU",
            "--currency",
            "RUB",
            "--timezone",
            "Europe/Moscow",
        )[0]
        == 0
    )
    code, out, _ = cli(database_url, "tenant", "quiet-hours", "coop-two")
    assert code == 0 and out.strip() == "quiet 21:00-08:00, promotional 00:00-06:00 (Europe/Moscow)"
    code, out, _ = cli(
        database_url, "tenant", "quiet-hours", "coop-two", "--start", "22:30", "--end", "07:00"
    )
    assert code == 0 and out.startswith("quiet 22:30-07:00")
    code, _, err = cli(database_url, "tenant", "quiet-hours", "coop-two", "--end", "7")
    assert code == 1 and "quiet hours end: time of day '7' is not HH:MM" in err
