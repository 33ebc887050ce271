"""One bound SMPP transceiver session over an asyncio TCP stream.

The session reads PDUs in a task of its own: responses complete the request that waits for
them (matched on sequence number), deliver_sm is answered at once and handed to
``on_deliver``, the SMSC's enquire_link is answered, and its unbind ends the session. Our own
enquire_link goes out on a timer; a link that does not answer within the response timeout
is closed, so a half-dead TCP connection is noticed instead of swallowing submits. When the
session ends, every request still waiting fails with ``LinkDown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

import smpp34
import structlog

from meterline.channels.smpp import pdu
from meterline.channels.smpp.pdu import Pdu

log = structlog.get_logger("meterline.channels.smpp")


class LinkDown(Exception):
    """The TCP link or the bind is gone; whatever was waiting on it has no answer."""


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the SMSC refused the bind: {pdu.status_name(status)} (0x{status:02X})")
        self.status = status


DeliverHandler = Callable[[smpp34.DeliverSm], None]


class SmppSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_deliver: DeliverHandler,
        *,
        response_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_deliver = on_deliver
        self._timeout = response_timeout
        self._sequence = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()
        self.close_reason = ""

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        bind_body: bytes,
        on_deliver: DeliverHandler,
        *,
        connect_timeout: float,
        response_timeout: float,
        enquire_link_interval: float,
    ) -> SmppSession:
        """Connect and bind as a transceiver; raises BindRefused, OSError or TimeoutError."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), connect_timeout
        )
        session = cls(reader, writer, on_deliver, response_timeout=response_timeout)
        session._tasks.append(asyncio.create_task(session._read_loop()))
        try:
            resp = await session.request(pdu.BIND_TRANSCEIVER, bind_body)
        except BaseException:
            await session.close("bind failed")
            raise
        if resp.status != pdu.ESME_ROK:
            await session.close("bind refused")
            raise BindRefused(resp.status)
        session._tasks.append(
            asyncio.create_task(session._enquire_link_loop(enquire_link_interval))
        )
        return session

    @property
    def alive(self) -> bool:
        return not self.closed.is_set()

    def _next_sequence(self) -> int:
        # Sequence numbers run 1 .. 0x7FFFFFFF and then start again.
        return (next(self._sequence) - 1) % 0x7FFFFFFF + 1

    async def request(self, command_id: int, body: bytes = b"") -> Pdu:
        """Send a request PDU and wait for its response (any command_status)."""
        return await self.request_raw(lambda seq: pdu.encode(command_id, 0, seq, body))

    async def request_raw(self, build: Callable[[int], bytes]) -> Pdu:
        """Like ``request`` for a PDU built elsewhere (submit_sm) from its sequence number."""
        if not self.alive:
            raise LinkDown(self.close_reason or "link closed")
        seq = self._next_sequence()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            self._writer.write(build(seq))
            await self._writer.drain()
            return await asyncio.wait_for(future, self._timeout)
        except (ConnectionError, OSError) as exc:
            await self.close(f"write failed: {exc!r}")
            raise LinkDown(self.close_reason) from None
        finally:
            self._pending.pop(seq, None)

    def _reply(self, command_id: int, seq: int, body: bytes = b"", status: int = 0) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self._writer.write(pdu.encode(command_id, status, seq, body))

    async def _read_loop(self) -> None:
        reason = "the SMSC closed the connection"
        try:
            while True:
                header = await self._reader.readexactly(pdu.HEADER.size)
                length, command_id, status, seq = pdu.HEADER.unpack(header)
                if length < pdu.HEADER.size or length > pdu.MAX_PDU:
                    reason = f"broken PDU stream (command_length {length})"
                    break
                body = await self._reader.readexactly(length - pdu.HEADER.size)
                if command_id & pdu.RESPONSE:
                    waiting = self._pending.get(seq)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(Pdu(command_id, status, seq, body))
                elif command_id == pdu.DELIVER_SM:
                    self._deliver(header + body, seq)
                elif command_id == pdu.ENQUIRE_LINK:
                    self._reply(pdu.ENQUIRE_LINK_RESP, seq)
                elif command_id == pdu.UNBIND:
                    self._reply(pdu.UNBIND_RESP, seq)
                    reason = "the SMSC unbound"
                    break
                else:
                    self._reply(pdu.GENERIC_NACK, seq, status=pdu.ESME_RINVCMDID)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"link lost: {type(exc).__name__}"
        except asyncio.CancelledError:
            reason = "closed"
        self._finish(reason)

    def _deliver(self, raw: bytes, seq: int) -> None:
        try:
            decoded = smpp34.decode(raw)
        except smpp34.SmppError as exc:
            log.warning("undecodable deliver_sm", error=str(exc))
            self._reply(pdu.DELIVER_SM_RESP, seq, b"\x00", status=0x08)  # ESME_RSYSERR
            return
        if isinstance(decoded, smpp34.DeliverSm):
            try:
                self._on_deliver(decoded)
            except Exception:  # a bad receipt must not take the link down
                log.exception("deliver_sm handler failed")
        self._reply(pdu.DELIVER_SM_RESP, seq, b"\x00")

    async def _enquire_link_loop(self, interval: float) -> None:
        while self.alive:
            await asyncio.sleep(interval)
            if not self.alive:
                return
            try:
                resp = await self.request(pdu.ENQUIRE_LINK)
            except (TimeoutError, LinkDown):
                await self.close("enquire_link went unanswered")
                return
            if resp.command_id != pdu.ENQUIRE_LINK_RESP:
                log.warning("unexpected answer to enquire_link", command_id=resp.command_id)

    def _finish(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkDown(reason))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self, reason: str = "closed") -> None:
        """End the session at once (no unbind): the TCP connection is closed."""
        self._finish(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current and not task.done():
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await task

    async def unbind(self) -> None:
        """Unbind politely (briefly waiting for the answer), then close."""
        if self.alive:
            with contextlib.suppress(TimeoutError, LinkDown, OSError):
                await asyncio.wait_for(self.request(pdu.UNBIND), 1.0)
        await self.close("unbound")
