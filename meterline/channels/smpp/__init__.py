"""SMPP 3.4 to an operator's SMSC, type ``smpp``: one transceiver bind per account and process.

The dispatcher keeps one adapter per channel account, so the bind outlives a send: the
first send connects, later sends reuse the session, and ``aclose`` unbinds.

- Each message is split by the domain's SMS rules (``parts.split``): GSM-7 as data_coding 0,
  anything else as UCS-2 (data_coding 8); a long one as concatenated parts with an 8-bit
  reference UDH. The reference is the message id mod 256, so a resend reuses it.
- Every submit_sm waits for its slot under the bind's TPS; at most ``window`` wait for an
  answer at once.
- ESME_RTHROTTLED / ESME_RMSGQFUL pause the whole bind for ``throttle_pause_s``. A message
  none of whose parts was taken answers retry with that wait, and the dispatcher sends it
  again. A long message part-way out resends the throttled part after the pause (up to
  ``throttle_resends`` times) so its parts stay together; past that it answers retry too,
  and the resend sends only the parts not yet taken (remembered per message, per process).
- A dropped link (TCP closed, enquire_link unanswered, SMSC unbind) is re-bound in the
  background with exponential backoff; a send meanwhile answers retry and loses nothing.
- Refused credentials (ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID) are a
  ChannelConfigError: the dispatcher pauses the account until an operator fixes it.
- Delivery receipts (deliver_sm with the receipt esm_class) are parsed per part and handed
  to the dispatcher by ``drain_status_updates``; ``services.message_parts`` rolls parts up.

A send that got no submit_sm_resp in time answers retry; the SMSC may have taken it, and
SMPP has no way to ask, so such a resend can reach the handset twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

import httpx
import smpp34
import structlog

from meterline.channels.base import (
    Channel,
    ChannelConfig,
    ChannelConfigError,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
)
from meterline.channels.smpp import pdu
from meterline.channels.smpp.config import SmppConfig
from meterline.channels.smpp.parts import Part, split
from meterline.channels.smpp.receipts import is_receipt, parse_receipt
from meterline.channels.smpp.session import BindRefused, LinkDown, SmppSession
from meterline.domain.sms import SmsTooLong

__all__ = ["CONFIG_ERRORS", "ERRORS", "SmppChannel", "SmppConfig"]

log = structlog.get_logger("meterline.channels.smpp")

# Bind answers that no reconnect can fix: the operator must correct the account.
BIND_CONFIG_ERRORS = frozenset({0x0D, 0x0E, 0x0F})  # RBINDFAIL, RINVPASWD, RINVSYSID

# submit_sm answers that say the account's settings are wrong, not this message.
CONFIG_ERRORS = frozenset(
    {"ESME_RINVSRCADR", "ESME_RINVSRCTON", "ESME_RINVSRCNPI", "ESME_RINVSYSTYP"}
)

THROTTLING = frozenset({pdu.ESME_RTHROTTLED, pdu.ESME_RMSGQFUL})
THROTTLING_NAMES = frozenset(pdu.status_name(status) for status in THROTTLING)

# What other submit_sm answers mean for the message; unlisted ones give up.
ERRORS: dict[str, Outcome] = {
    "ESME_RTHROTTLED": Outcome.retry,  # handled before the table: pause, then resend
    "ESME_RMSGQFUL": Outcome.retry,
    "ESME_RSYSERR": Outcome.retry,  # the SMSC's own trouble
    "ESME_RSUBMITFAIL": Outcome.retry,
    "ESME_RX_T_APPN": Outcome.retry,  # "temporary application error"
    "ESME_RINVBNDSTS": Outcome.retry,  # our bind is not in a state to submit: re-bind
    "ESME_RUNKNOWNERR": Outcome.retry,
    "ESME_RINVDSTADR": Outcome.give_up,  # not a number the SMSC can route
    "ESME_RINVDSTTON": Outcome.give_up,
    "ESME_RINVDSTNPI": Outcome.give_up,
    "ESME_RINVMSGLEN": Outcome.give_up,
    "ESME_RINVESMCLASS": Outcome.give_up,
    "ESME_RX_P_APPN": Outcome.give_up,  # "permanent application error"
    "ESME_RX_R_APPN": Outcome.give_up,  # "reject message"
    "ESME_RINVEXPIRY": Outcome.give_up,
    "ESME_RDELIVERYFAILURE": Outcome.give_up,
}


class _Pacer:
    """Lets submit_sm go no closer than 1/tps apart; a throttle pushes the next one back.

    One caller at a time waits for its slot; a stalled event loop delays sends, it never
    bunches them up.
    """

    def __init__(
        self,
        tps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / tps
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - self.clock()
            if delay > 0:
                await self.sleep(delay)
            # On schedule, slots stay exactly 1/tps apart (the sleep's own lateness is not
            # added up); after a stall the schedule restarts from now with half a slot of
            # catch-up at most, so no second ever holds more than tps + 1.
            self._next = max(self.clock() - self.interval / 2, self._next) + self.interval

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, self.clock() + seconds)


class SmppChannel(Channel):
    type_name: ClassVar[str] = "smpp"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = SmppConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = ERRORS

    config: SmppConfig

    def __init__(self, config: ChannelConfig, http: httpx.AsyncClient | None = None) -> None:
        if not isinstance(config, SmppConfig):
            raise TypeError(f"smpp channel needs an SmppConfig, not {type(config).__name__}")
        super().__init__(config, http)
        self._updates: list[StatusUpdate] = []
        self._accepted: dict[str, dict[int, str]] = {}  # reference -> part number -> SMSC id
        self._reset()

    def _reset(self) -> None:
        """Forget loop-bound state (a new event loop gets a new bind)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pacer = _Pacer(self.config.tps)  # its lock belongs to one event loop
        self._session: SmppSession | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._bound: asyncio.Event | None = None
        self._window: asyncio.Semaphore | None = None
        self._config_error: ChannelConfigError | None = None
        self._closing = False
        self.binds = 0  # successful binds so far (tests and logs: how often it reconnected)

    # -- the link ---------------------------------------------------------------------------

    def _bind_body(self) -> bytes:
        cfg = self.config
        return pdu.bind_transceiver_body(
            cfg.system_id, cfg.password.get_secret_value(), cfg.system_type
        )

    def _start(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._reset()
            self._loop = loop
        if self._bound is None:
            self._bound = asyncio.Event()
            self._window = asyncio.Semaphore(self.config.window)
        idle = self._supervisor is None or self._supervisor.done()
        if idle and self._config_error is None:
            self._supervisor = asyncio.create_task(self._supervise())
        return self._bound

    async def _supervise(self) -> None:
        """Bind, wait for the link to drop, bind again with exponential backoff."""
        cfg = self.config
        assert self._bound is not None
        delay = cfg.reconnect_initial_s
        while not self._closing:
            try:
                session = await SmppSession.open(
                    cfg.host,
                    cfg.port,
                    self._bind_body(),
                    self._on_deliver,
                    connect_timeout=cfg.connect_timeout_s,
                    response_timeout=cfg.response_timeout_s,
                    enquire_link_interval=cfg.enquire_link_s,
                )
            except BindRefused as exc:
                if exc.status in BIND_CONFIG_ERRORS:
                    self._config_error = ChannelConfigError(
                        f"SMPP bind as {cfg.system_id!r} at {cfg.host}:{cfg.port} refused: "
                        f"{pdu.status_name(exc.status)}; check system_id and password"
                    )
                    log.error("smpp bind refused", host=cfg.host, status=exc.status)
                    self._bound.set()  # wake waiting sends: they raise the config error
                    return
                log.warning("smpp bind failed", host=cfg.host, error=str(exc), retry_in=delay)
            except (OSError, TimeoutError, LinkDown) as exc:
                log.warning("smpp connect failed", host=cfg.host, error=repr(exc), retry_in=delay)
            except Exception:  # a bug must not end the supervision for good
                log.exception("smpp bind attempt failed", host=cfg.host, retry_in=delay)
            else:
                self.binds += 1
                delay = cfg.reconnect_initial_s
                self._session = session
                self._bound.set()
                log.info("smpp bound", host=cfg.host, system_id=cfg.system_id)
                await session.closed.wait()
                self._bound.clear()
                self._session = None
                if self._closing:
                    return
                log.warning("smpp link dropped", host=cfg.host, reason=session.close_reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.reconnect_max_s)

    async def _link(self) -> SmppSession | None:
        bound = self._start()
        if not bound.is_set() and self.config.link_wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bound.wait(), self.config.link_wait_s)
        if self._config_error is not None:
            raise self._config_error
        session = self._session
        return session if session is not None and session.alive else None

    def _on_deliver(self, deliver: smpp34.DeliverSm) -> None:
        if not is_receipt(deliver.esm_class):
            log.info("mobile-originated SMS ignored", source=deliver.source_addr)
            return
        tlvs = {tlv.tag: tlv.value for tlv in deliver.tlvs}
        receipt = parse_receipt(deliver.short_message, tlvs)
        if receipt is None:
            log.warning("unreadable delivery receipt", length=len(deliver.short_message))
            return
        update = receipt.status_update()
        if update is not None:
            self._updates.append(update)

    async def drain_status_updates(self) -> list[StatusUpdate]:
        updates, self._updates = self._updates, []
        return updates

    async def aclose(self) -> None:
        self._closing = True
        session, supervisor = self._session, self._supervisor
        if session is not None:
            await session.unbind()
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(BaseException):
                await supervisor
        self._reset()

    # -- sending ----------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        cfg = self.config
        try:
            parts = split(
                message.body,
                message.message_id & 0xFF,
                gsm7_packed=cfg.gsm7_packed,
                max_parts=cfg.max_parts,
            )
        except (SmsTooLong, ValueError) as exc:
            return SendResult(Outcome.give_up, error_code="too_long", error_text=str(exc))
        session = await self._link()
        if session is None:
            return SendResult(
                Outcome.retry,
                error_code="link_down",
                error_text=f"no SMPP bind to {cfg.host}:{cfg.port} at the moment (reconnecting)",
            )
        accepted = self._accepted.setdefault(message.reference, {})
        for part in parts:
            if part.number in accepted:
                continue  # taken on an earlier attempt: resending would duplicate it
            resends = 0
            while (result := await self._submit(session, message, part, accepted)) is not None:
                # A message part-way out keeps its parts together: a throttled part is
                # sent again after the pause, a few times, before the message is requeued.
                throttled = result.error_code in THROTTLING_NAMES
                if not (throttled and accepted and resends < cfg.throttle_resends):
                    return result
                resends += 1
        del self._accepted[message.reference]
        ids = tuple(accepted[n] for n in range(1, len(parts) + 1))
        return SendResult(
            Outcome.accepted, provider_message_id=ids[0], part_ids=ids if len(ids) > 1 else ()
        )

    async def _submit(
        self,
        session: SmppSession,
        message: OutboundMessage,
        part: Part,
        accepted: dict[int, str],
    ) -> SendResult | None:
        """Submit one part; None when the SMSC took it, else the message's result."""
        cfg = self.config
        assert self._window is not None

        def build(seq: int) -> bytes:
            return smpp34.SubmitSm(
                cfg.source_addr,
                message.to.removeprefix("+"),
                part.short_message,
                source_addr_ton=cfg.source_ton,
                source_addr_npi=cfg.source_npi,
                dest_addr_ton=cfg.dest_ton,
                dest_addr_npi=cfg.dest_npi,
                esm_class=part.esm_class,
                registered_delivery=1 if cfg.registered_delivery else 0,
                validity_period=cfg.validity_period,
                data_coding=part.data_coding,
                sequence_number=seq,
            ).encode()

        async with self._window:
            await self.pacer.wait()
            try:
                resp = await session.request_raw(build)
            except LinkDown as exc:
                return SendResult(Outcome.retry, error_code="link_down", error_text=str(exc))
            except TimeoutError:
                return SendResult(
                    Outcome.retry,
                    error_code="timeout",
                    error_text=f"no submit_sm_resp within {cfg.response_timeout_s:g} s",
                )
        if resp.status == pdu.ESME_ROK and resp.command_id == pdu.SUBMIT_SM_RESP:
            message_id, _ = pdu.read_cstring(resp.body)
            if message_id:
                accepted[part.number] = message_id
                return None
            return self._failed(message, accepted, "no_message_id", "submit_sm_resp without id")
        name = pdu.status_name(resp.status)
        text = f"{name} (0x{resp.status:02X}) for part {part.number}/{part.total}"
        if resp.status in THROTTLING:
            self.pacer.pause(cfg.throttle_pause_s)
            return SendResult(
                Outcome.retry, error_code=name, error_text=text, retry_after=cfg.throttle_pause_s
            )
        if name in CONFIG_ERRORS:
            error = ChannelConfigError(f"the SMSC refused the account's sender settings: {text}")
            self._config_error, self._closing = error, True  # the dispatcher pauses us
            await session.unbind()
            raise error
        outcome = self.outcome_of(name)
        if outcome is Outcome.retry:
            return SendResult(Outcome.retry, error_code=name, error_text=text)
        return self._failed(message, accepted, name, text, outcome)

    def _failed(
        self,
        message: OutboundMessage,
        accepted: dict[int, str],
        code: str,
        text: str,
        outcome: Outcome = Outcome.give_up,
    ) -> SendResult:
        """A permanent refusal: the parts already taken are reported (they are billed)."""
        self._accepted.pop(message.reference, None)
        ids = tuple(accepted[n] for n in sorted(accepted))
        return SendResult(
            outcome,
            provider_message_id=ids[0] if ids else None,
            error_code=code,
            error_text=text,
            part_ids=ids,
        )
