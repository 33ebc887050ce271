"""An SMSC for the SMPP tests: smpp34's server (a real SMPP 3.4 implementation), behind a
TCP gate that checks bind credentials and can break the link.

smpp34's Python server accepts every bind, so the gate reads the first PDU: a
bind_transceiver with the right system_id and password is passed on to the server (and
from then on every byte both ways); anything else is answered with bind_transceiver_resp
ESME_RINVSYSID / ESME_RINVPASWD and closed. The gate also
- drops every connection at once (``drop``), as a network failure would;
- refuses new connections for a while (``refuse``), to watch the reconnect backoff;
- swallows traffic without passing it on (``blackhole``), so enquire_link goes unanswered;
- notes the command id of every PDU the client sends (``commands``).

The server answers submit_sm with ids, or with the statuses queued by ``reject_next``, and
sends delivery receipts (deliver_sm, esm_class 0x04, Appendix B text) on demand or, with
``auto_receipts``, right after each accepted part.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import smpp34

from tests.support.ports import free_port

HEADER = struct.Struct(">IIII")
BIND_TRANSCEIVER = 0x09
ENQUIRE_LINK = 0x15
SUBMIT_SM = 0x04


@dataclass(frozen=True)
class Submit:
    session_id: str
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    at: float  # time.monotonic() when the server got it
    status: int  # what the server answered (0: accepted)
    message_id: str | None


class Smsc:
    def __init__(self, system_id: str = "esme1", password: str = "secret") -> None:
        self.system_id = system_id
        self.password = password
        self.port = 0  # the gate's, known once it listens (bound to port 0: no race)
        self.submits: list[Submit] = []
        self.commands: list[int] = []
        self.bind_attempts: list[float] = []
        self.refuse = False
        self.blackhole = False
        # A function of the submit (and its id) giving a receipt stat, or None for no receipt.
        self.auto_receipts: Callable[[Submit], str | None] | None = None
        self._script: deque[int] = deque()
        self._ids = itertools.count(0x1000)
        self._sessions: dict[str, Any] = {}
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- life -------------------------------------------------------------------------------

    def __enter__(self) -> Smsc:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    async def _start(self) -> None:
        # smpp34's server can't say which port it got from port 0, so it gets a port
        # looked up first, and another if something took that one before it bound (CI
        # once found a looked-up port taken, the gate's; the gate now binds port 0).
        for attempt in range(5):
            self._inner_port = free_port()
            self._server = smpp34.Server(host="127.0.0.1", port=self._inner_port, system_id="SMSC")
            try:
                await self._server.start()
                break
            except smpp34.SmppError as e:
                if "in use" not in str(e) or attempt == 4:
                    raise
        self._gate = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._gate.sockets[0].getsockname()[1])
        self._serving = asyncio.create_task(self._serve())

    async def _stop(self) -> None:
        self._gate.close()
        self._abort_links()
        await asyncio.sleep(0.2)  # let the server see its sessions end
        self._serving.cancel()
        with contextlib.suppress(BaseException):
            await self._serving
        await self._server.stop()

    # -- controls (called from the test's thread) -------------------------------------------

    def reject_next(self, *statuses: int) -> None:
        """Answer the next submit_sm PDUs with these command statuses, in order."""
        self._script.extend(statuses)

    def drop(self) -> None:
        """Cut every client connection (TCP reset), as a failing network would."""
        self._loop.call_soon_threadsafe(self._abort_links)

    def send_receipt(
        self, message_id: str, stat: str = "DELIVRD", err: str = "000", to: str = "Meterline"
    ) -> Future[Any]:
        """Send a receipt without waiting (the client answers it on the caller's loop)."""
        return asyncio.run_coroutine_threadsafe(
            self._receipt(message_id, stat, err, to), self._loop
        )

    def accepted(self) -> list[Submit]:
        return [s for s in self.submits if s.status == 0]

    # -- the gate ---------------------------------------------------------------------------

    def _abort_links(self) -> None:
        for client, upstream in self._links:
            client.transport.abort()
            if upstream is not None:
                upstream.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.bind_attempts.append(time.monotonic())
        if self.refuse:
            writer.transport.abort()
            return
        try:
            header = await reader.readexactly(16)
            length, command_id, _, seq = HEADER.unpack(header)
            body = await reader.readexactly(length - 16)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        fields = body.split(b"\x00")
        system_id, password = fields[0].decode(), fields[1].decode()
        if command_id != BIND_TRANSCEIVER or system_id != self.system_id:
            await self._refuse_bind(writer, command_id, seq, 0x0F)  # ESME_RINVSYSID
            return
        if password != self.password:
            await self._refuse_bind(writer, command_id, seq, 0x0E)  # ESME_RINVPASWD
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._inner_port)
        self._links.append((writer, up_writer))
        up_writer.write(header + body)
        await asyncio.gather(
            self._pipe_pdus(reader, up_writer),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )

    async def _refuse_bind(
        self, writer: asyncio.StreamWriter, command_id: int, seq: int, status: int
    ) -> None:
        body = b"SMSC\x00"
        writer.write(HEADER.pack(16 + len(body), command_id | 0x80000000, status, seq) + body)
        await writer.drain()
        writer.close()

    async def _pipe_pdus(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client to server, a PDU at a time (to note its command id)."""
        try:
            while True:
                header = await reader.readexactly(16)
                length, command_id, _, _ = HEADER.unpack(header)
                body = await reader.readexactly(length - 16)
                self.commands.append(command_id)
                if self.blackhole:
                    continue
                writer.write(header + body)
                await writer.drain()
        finally:
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.blackhole:
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    # -- the server -------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                self._sessions[event.session_id] = event
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._answer(event)

    def _answer(self, event: smpp34.SubmitSmEvent) -> None:
        status = self._script.popleft() if self._script else 0
        message_id = f"{next(self._ids):x}" if status == 0 else None
        submit = Submit(
            session_id=event.session_id,
            source_addr=event.source_addr,
            destination_addr=event.destination_addr,
            esm_class=event.esm_class,
            data_coding=event.data_coding,
            registered_delivery=event.registered_delivery,
            short_message=event.short_message,
            at=time.monotonic(),
            status=status,
            message_id=message_id,
        )
        self.submits.append(submit)
        if message_id is None:
            event.reject(status)
            return
        event.accept(message_id)
        stat = self.auto_receipts(submit) if self.auto_receipts else None
        if stat is not None and submit.registered_delivery:
            asyncio.get_running_loop().create_task(
                self._receipt(message_id, stat, "000" if stat == "DELIVRD" else "001", None, submit)
            )

    async def _receipt(
        self, message_id: str, stat: str, err: str, to: str | None, submit: Submit | None = None
    ) -> None:
        text = (
            f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:2611291200 done date:2611291201 stat:{stat} err:{err} text:"
        )
        session_id = submit.session_id if submit else next(iter(self._sessions))
        esme = self._sessions[session_id]
        await esme.deliver_sm(
            to or (submit.source_addr if submit else "Meterline"),
            text.encode("ascii"),
            source_addr=submit.destination_addr if submit else "8801711000001",
            esm_class=0x04,
        )
