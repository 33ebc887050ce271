"""`meterline push vapid-keys` and adding telegram / webpush channel accounts by CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from meterline.channels.webpush.keys import public_key_text, vapid_private_key
from meterline.cli import app
from tests.support.telegram_standin import TOKEN

runner = CliRunner()


def cli(database_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"METERLINE_DATABASE_URL": database_url, **env})
    return result.exit_code, result.stdout, result.stderr


def test_vapid_keys_make_a_pair_that_a_webpush_account_accepts(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(database_url, "push", "vapid-keys", "--env", "ALIGARH_VAPID")
    assert code == 0, err
    made = json.loads(out)
    # The public key is the private key's own half.
    assert public_key_text(vapid_private_key(made["private_key"])) == made["public_key"]
    assert made["env"] == f"ALIGARH_VAPID={made['private_key']}"
    assert made["channel_config"]["vapid_private_key"] == "env:ALIGARH_VAPID"
    # A second run makes a different pair.
    assert (
        json.loads(cli(database_url, "push", "vapid-keys")[1])["private_key"] != made["private_key"]
    )

    args = ("--country", "IN", "--currency", "INR", "--timezone", "Asia/Kolkata")
    assert cli(database_url, "tenant", "create", "aligarh", "--name", "Aligarh", *args)[0] == 0
    config = dict(made["channel_config"], vapid_subject="mailto:ops@aligarh.example")
    monkeypatch.setenv("ALIGARH_VAPID", made["private_key"])
    code, out, err = cli(
        database_url,
        "channel",
        "add",
        "browser-push",
        "--type",
        "webpush",
        "--tenant",
        "aligarh",
        "--config",
        json.dumps(config),
    )
    assert code == 0, err
    view = json.loads(out)
    assert (view["medium"], view["rate_per_second"]) == ("webpush", 50.0)
    assert made["private_key"] not in out

    monkeypatch.setenv("ALIGARH_TG", TOKEN)
    code, out, err = cli(
        database_url,
        "channel",
        "add",
        "bot",
        "--type",
        "telegram",
        "--tenant",
        "aligarh",
        "--config",
        json.dumps({"bot_token": "env:ALIGARH_TG"}),
    )
    assert code == 0, err
    view = json.loads(out)
    # Telegram's broadcast limit is the account's default rate.
    assert (view["medium"], view["rate_per_second"]) == ("telegram", 30.0)
    assert TOKEN not in out
