"""The browser push commands of `meterline`: `meterline push vapid-keys`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

push_app = typer.Typer(help="Browser push (Web Push) set-up.", no_args_is_help=True)


@push_app.command("vapid-keys")
def vapid_keys(
    env: Annotated[
        str, typer.Option(help="Name of the environment variable the private key will live in")
    ] = "METERLINE_VAPID_PRIVATE_KEY",
    subject: Annotated[
        str, typer.Option(help="Who sends: a mailto: address the push services can write to")
    ] = "mailto:ops@example.org",
) -> None:
    """Make a VAPID key pair for one tenant's webpush channel account.

    Prints JSON: the private key (a secret: put it in the environment variable, never in
    the channel settings), the public key (the browser's applicationServerKey), and the
    settings for `meterline channel add --type webpush`.
    """
    from meterline.channels.webpush.keys import generate_vapid_keys  # cryptography: load late

    keys = generate_vapid_keys()
    typer.echo(
        json.dumps(
            {
                "private_key": keys.private_key,
                "public_key": keys.public_key,
                "env": f"{env}={keys.private_key}",
                "channel_config": {
                    "vapid_private_key": f"env:{env}",
                    "vapid_public_key": keys.public_key,
                    "vapid_subject": subject,
                },
            },
            indent=2,
        )
    )
