"""Providers' webhook subscription handshakes (``GET`` on a channel account's callback URL).

Meta calls ``GET /api/v1/callbacks/{id}?hub.mode=subscribe&hub.verify_token=...
&hub.challenge=...`` when an operator subscribes the URL, and expects the challenge back as
plain text; the adapter decides (``Channel.verify_subscription``). No API key here either:
the verify token proves the caller. Status reports themselves arrive by ``POST`` on the
same URL (``api_messaging.provider_callback``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from meterline.channels.base import CallbackRequest, ChannelConfigError
from meterline.runtime import Runtime
from meterline.services.channel_accounts import channel_for
from meterline.store.models import ChannelAccount

router = APIRouter(prefix="/api/v1")


async def read_callback(request: Request) -> CallbackRequest:
    """A provider's or gateway's HTTP callback, framework-neutral, with its raw body (what
    signatures are computed over)."""
    return CallbackRequest(
        method=request.method,
        url=str(request.url),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
    )


@router.get("/callbacks/{channel_account_id}", include_in_schema=False)
async def subscription_handshake(request: Request, channel_account_id: int) -> PlainTextResponse:
    runtime: Runtime = request.app.state.runtime
    query = dict(request.query_params)

    def work() -> str | None:
        with runtime.reader() as session:
            account = session.get(ChannelAccount, channel_account_id)
            if account is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such channel account")
            try:
                channel = channel_for(account, None)
            except ChannelConfigError as exc:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
            return channel.verify_subscription(query)

    answer = await run_in_threadpool(work)
    if answer is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "verify token does not match")
    return PlainTextResponse(answer)
