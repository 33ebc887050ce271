"""The SMPP adapter over real TCP against smpp34's SMSC server (tests/support/smsc.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meterline.channels.base import ChannelConfigError, DeliveryStatus, OutboundMessage, Outcome
from meterline.channels.registry import build_channel
from meterline.channels.smpp import SmppChannel
from meterline.channels.smpp.parts import split
from meterline.domain.sms import estimate
from tests.support.smsc import ENQUIRE_LINK, Smsc, Submit

pytestmark = pytest.mark.anyio

TO = "+8801711000001"

# GSM 03.38 default alphabet and extension table, written out from the spec for decoding
# what the SMSC received (independently of the adapter's own tables).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~"}
GSM_EXT |= {0x3E: "]", 0x40: "|", 0x65: "€"}


def gsm_decode(septets: bytes) -> str:
    out, escape = [], False
    for s in septets:
        if escape:
            out.append(GSM_EXT[s])
            escape = False
        elif s == 0x1B:
            escape = True
        else:
            out.append(GSM_BASIC[s])
    assert not escape, "a part ends inside an escape sequence"
    return "".join(out)


def unpack_septets(data: bytes, fill_bits: int, count: int) -> bytes:
    bits = int.from_bytes(data, "little") >> fill_bits
    return bytes((bits >> (7 * i)) & 0x7F for i in range(count))


def reassemble(submits: list[Submit], packed: bool = False) -> str:
    """The text the handset shows: parts ordered by their UDH, each decoded on its own."""
    if len(submits) == 1 and not submits[0].esm_class & 0x40:
        s = submits[0]
        return (
            gsm_decode(s.short_message)
            if s.data_coding == 0
            else s.short_message.decode("utf-16-be")
        )
    pieces: dict[int, str] = {}
    refs = set()
    for s in submits:
        assert s.esm_class & 0x40, "a long message's part without UDHI"
        udhl = s.short_message[0]
        udh, payload = s.short_message[1 : 1 + udhl], s.short_message[1 + udhl :]
        assert udh[0] == 0x00 and udh[1] == 3, "not the 8-bit concatenation element"
        ref, total, number = udh[2], udh[3], udh[4]
        refs.add((ref, total))
        if s.data_coding == 8:
            pieces[number] = payload.decode("utf-16-be")  # raises on a split surrogate pair
        elif packed:
            fill = (7 - ((udhl + 1) * 8) % 7) % 7
            count = (len(payload) * 8 - fill) // 7
            pieces[number] = gsm_decode(unpack_septets(payload, fill, count).rstrip(b"\x00"))
        else:
            pieces[number] = gsm_decode(payload)
    assert len(refs) == 1, f"parts disagree on reference/total: {refs}"
    total = next(iter(refs))[1]
    assert sorted(pieces) == list(range(1, total + 1))
    return "".join(pieces[n] for n in sorted(pieces))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


def config(smsc: Smsc, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": smsc.system_id,
        "password": smsc.password,
        "source_addr": "Meterline",
        "tps": 200,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.4,
        "throttle_pause_s": 0.3,
        "response_timeout_s": 2.0,
        **extra,
    }


def channel(smsc: Smsc, **extra: Any) -> SmppChannel:
    built = build_channel("smpp", config(smsc, **extra))
    assert isinstance(built, SmppChannel)
    return built


def outbound(body: str, message_id: int = 1, to: str = TO) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        reference=f"ml-1-{message_id}",
        to=to,
        body=body,
        kind="custom",
        language="en",
    )


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# A split at 153 septets would fall between ESC and "€" (position 152-153): the part must
# end before the escape instead.
GSM_LONG = ("Dues of 1250 BDT are due on 30 Nov. " * 5)[:152] + "€[x] " + "Pay at the office " * 12
BN = "আপনার বিদ্যুৎ বিলের বকেয়া ৳১,২৫০ টাকা ৩০ নভেম্বরের মধ্যে পরিশোধ করুন। ধন্যবাদ! " * 2
HI = "आपका बिजली बिल ₹1,250 बकाया है, कृपया 30 नवंबर तक भुगतान करें। धन्यवाद 🙏 " * 2
RU = "Ваш долг за электроэнергию 1 250 ₽. Оплатите до 30 ноября, пожалуйста. 😀 " * 2


async def test_a_long_gsm7_message_arrives_as_concatenated_parts(smsc: Smsc) -> None:
    ch = channel(smsc)
    try:
        result = await ch.send(outbound(GSM_LONG, message_id=300))
    finally:
        await ch.aclose()
    assert result.outcome is Outcome.accepted
    got = smsc.accepted()
    assert len(got) == estimate(GSM_LONG).segments == 3
    assert {s.data_coding for s in got} == {0}
    assert {s.short_message[3] for s in got} == {300 & 0xFF}  # the reference: message id
    assert all(s.destination_addr == TO[1:] and s.source_addr == "Meterline" for s in got)
    assert all(s.registered_delivery == 1 for s in got)
    assert reassemble(got) == GSM_LONG
    assert result.provider_message_id == got[0].message_id
    assert result.part_ids == tuple(s.message_id for s in got)


async def test_packed_gsm7_reassembles_too(smsc: Smsc) -> None:
    ch = channel(smsc, gsm7_packed=True)
    try:
        assert (await ch.send(outbound(GSM_LONG))).outcome is Outcome.accepted
    finally:
        await ch.aclose()
    got = smsc.accepted()
    assert len(got) == 3 and all(len(s.short_message) <= 140 for s in got)
    assert reassemble(got, packed=True) == GSM_LONG


async def test_a_short_message_is_one_part_without_udh(smsc: Smsc) -> None:
    ch = channel(smsc)
    try:
        result = await ch.send(outbound("Your bill: 1250 BDT {due 30/11}"))
    finally:
        await ch.aclose()
    (got,) = smsc.accepted()
    assert got.esm_class == 0 and got.data_coding == 0
    assert reassemble([got]) == "Your bill: 1250 BDT {due 30/11}"
    assert result.part_ids == ()


@pytest.mark.parametrize("text", [BN, HI, RU], ids=["bengali", "hindi", "russian"])
async def test_ucs2_messages_arrive_as_concatenated_ucs2_parts(smsc: Smsc, text: str) -> None:
    ch = channel(smsc)
    try:
        result = await ch.send(outbound(text))
    finally:
        await ch.aclose()
    assert result.outcome is Outcome.accepted
    got = smsc.accepted()
    assert len(got) == estimate(text).segments > 1
    assert {s.data_coding for s in got} == {8}
    assert all(len(s.short_message) <= 140 for s in got)
    assert reassemble(got) == text


async def test_a_throttled_message_is_paused_and_sent_again(smsc: Smsc) -> None:
    ch = channel(smsc)
    smsc.reject_next(0x58)  # nothing taken yet: back to the dispatcher
    try:
        first = await ch.send(outbound(GSM_LONG, message_id=7))
        assert first.outcome is Outcome.retry
        assert first.error_code == "ESME_RTHROTTLED" and first.retry_after == 0.3
        throttled_at = smsc.submits[-1].at
        second = await ch.send(outbound(GSM_LONG, message_id=7))  # the dispatcher's resend
    finally:
        await ch.aclose()
    assert second.outcome is Outcome.accepted
    assert smsc.submits[1].at - throttled_at >= 0.25  # the bind paused
    assert [s.status for s in smsc.submits] == [0x58, 0, 0, 0]
    assert reassemble(smsc.accepted()) == GSM_LONG


async def test_a_part_throttled_midway_is_resent_in_place(smsc: Smsc) -> None:
    ch = channel(smsc)
    smsc.reject_next(0, 0x58, 0x14)  # part 1 taken, part 2 throttled twice
    try:
        result = await ch.send(outbound(GSM_LONG, message_id=7))
    finally:
        await ch.aclose()
    assert result.outcome is Outcome.accepted
    assert [s.status for s in smsc.submits] == [0, 0x58, 0x14, 0, 0]
    gaps = [b.at - a.at for a, b in zip(smsc.submits[1:3], smsc.submits[2:4], strict=True)]
    assert min(gaps) >= 0.25  # each resend waited out the pause
    got = smsc.accepted()
    assert len(got) == 3 and reassemble(got) == GSM_LONG  # each part exactly once
    assert result.part_ids == tuple(s.message_id for s in got)


async def test_past_the_resends_only_what_was_not_taken_goes_again(smsc: Smsc) -> None:
    ch = channel(smsc, throttle_resends=1)
    smsc.reject_next(0, 0x58, 0x58)  # part 1 taken; part 2 throttled, resent, throttled
    try:
        first = await ch.send(outbound(GSM_LONG, message_id=7))
        assert (first.outcome, first.error_code) == (Outcome.retry, "ESME_RTHROTTLED")
        second = await ch.send(outbound(GSM_LONG, message_id=7))  # the dispatcher's resend
    finally:
        await ch.aclose()
    assert second.outcome is Outcome.accepted
    assert [s.status for s in smsc.submits] == [0, 0x58, 0x58, 0, 0]
    got = smsc.accepted()
    assert len(got) == 3 and reassemble(got) == GSM_LONG  # part 1 was not sent again
    assert second.part_ids == tuple(s.message_id for s in got)


async def test_a_full_queue_is_retried_the_same_way(smsc: Smsc) -> None:
    ch = channel(smsc)
    smsc.reject_next(0x14)
    try:
        first = await ch.send(outbound("Power cut 10-12"))
        second = await ch.send(outbound("Power cut 10-12"))
    finally:
        await ch.aclose()
    assert (first.outcome, first.error_code) == (Outcome.retry, "ESME_RMSGQFUL")
    assert second.outcome is Outcome.accepted
    assert len(smsc.accepted()) == 1


async def test_other_submit_errors_go_through_the_error_table(smsc: Smsc) -> None:
    ch = channel(smsc)
    smsc.reject_next(0x0B, 0x08, 0x0A)
    try:
        bad_number = await ch.send(outbound("x", message_id=1))
        smsc_trouble = await ch.send(outbound("x", message_id=2))
        with pytest.raises(ChannelConfigError, match="ESME_RINVSRCADR"):
            await ch.send(outbound("x", message_id=3))
    finally:
        await ch.aclose()
    assert (bad_number.outcome, bad_number.error_code) == (Outcome.give_up, "ESME_RINVDSTADR")
    assert (smsc_trouble.outcome, smsc_trouble.error_code) == (Outcome.retry, "ESME_RSYSERR")


@pytest.mark.parametrize(
    "change, status",
    [({"password": "wrong"}, "ESME_RINVPASWD"), ({"system_id": "nobody"}, "ESME_RINVSYSID")],
)
async def test_refused_credentials_are_a_config_error(
    smsc: Smsc, change: dict[str, str], status: str
) -> None:
    ch = channel(smsc, **change)
    try:
        with pytest.raises(ChannelConfigError, match=status) as raised:
            await ch.send(outbound("x"))
        assert "wrong" not in str(raised.value)  # never the password
        with pytest.raises(ChannelConfigError):  # and it stops trying
            await ch.send(outbound("x"))
    finally:
        await ch.aclose()
    assert len(smsc.bind_attempts) == 1 and smsc.submits == []


async def test_a_dropped_link_is_rebound_and_nothing_is_lost_or_doubled(smsc: Smsc) -> None:
    ch = channel(smsc, link_wait_s=0)
    try:
        assert (await ch.send(outbound("first", 1))).outcome is Outcome.retry  # still binding
        await eventually(lambda: ch.binds == 1)
        assert (await ch.send(outbound("first", 1))).outcome is Outcome.accepted
        smsc.refuse = True
        smsc.drop()
        await eventually(lambda: len(smsc.bind_attempts) >= 4)  # 0.05, 0.1, 0.2 s apart
        during = await ch.send(outbound("second", 2))
        assert (during.outcome, during.error_code) == (Outcome.retry, "link_down")
        smsc.refuse = False
        await eventually(lambda: ch.binds == 2)
        after = await ch.send(outbound("second", 2))
    finally:
        await ch.aclose()
    assert after.outcome is Outcome.accepted
    assert sorted(gsm_decode(s.short_message) for s in smsc.accepted()) == ["first", "second"]
    gaps = [b - a for a, b in zip(smsc.bind_attempts[1:], smsc.bind_attempts[2:], strict=False)]
    assert gaps[0] >= 0.04 and gaps[1] > gaps[0] * 1.5  # the backoff grows


async def test_enquire_link_keeps_the_link_checked_and_a_silent_link_is_replaced(
    smsc: Smsc,
) -> None:
    ch = channel(smsc, enquire_link_s=0.1, response_timeout_s=0.3)
    try:
        assert (await ch.send(outbound("x"))).outcome is Outcome.accepted
        await eventually(lambda: smsc.commands.count(ENQUIRE_LINK) >= 3)
        assert ch.binds == 1  # answered: the same bind
        smsc.blackhole = True  # the TCP link stays up but nothing comes back
        await eventually(lambda: len(smsc.bind_attempts) >= 2)
        smsc.blackhole = False
        await eventually(lambda: ch.binds == 2)
    finally:
        await ch.aclose()


async def test_receipts_come_back_per_part(smsc: Smsc) -> None:
    ch = channel(smsc)
    try:
        result = await ch.send(outbound(GSM_LONG))
        ids = result.part_ids
        smsc.send_receipt(ids[0], "DELIVRD")
        smsc.send_receipt(ids[1], "UNDELIV", err="001")
        smsc.send_receipt(ids[2], "ENROUTE")  # nothing new: no update
        updates: list[Any] = []

        async def drained() -> bool:
            updates.extend(await ch.drain_status_updates())
            return len(updates) >= 2

        deadline = time.monotonic() + 5
        while not await drained():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        updates.extend(await ch.drain_status_updates())
    finally:
        await ch.aclose()
    # The stand-in sends each receipt from a task of its own, so two may arrive either way
    # round (as from a real SMSC): compare them by message id.
    updates.sort(key=lambda u: ids.index(u.provider_message_id))
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (ids[0], DeliveryStatus.delivered),
        (ids[1], DeliveryStatus.failed),
    ]
    assert updates[1].error_code == "UNDELIV:001" and updates[1].outcome is Outcome.give_up


async def test_the_binds_tps_is_respected(smsc: Smsc) -> None:
    tps = 20.0
    ch = channel(smsc, tps=tps)
    try:
        results = await asyncio.gather(*(ch.send(outbound(GSM_LONG, i)) for i in range(1, 6)))
    finally:
        await ch.aclose()
    assert all(r.outcome is Outcome.accepted for r in results)
    times = sorted(s.at for s in smsc.accepted())
    assert len(times) == 15
    span = times[-1] - times[0]
    expected = (len(times) - 1) / tps  # 0.7 s
    assert expected * 0.9 <= span <= expected * 1.5 + 0.3
    # No one-second window holds more than the TPS (plus one for the window's edges).
    assert max(sum(1 for t in times if a <= t < a + 1.0) for a in times) <= tps + 1


def test_the_parts_never_cut_an_escape_or_a_surrogate_pair() -> None:
    parts = split(GSM_LONG, 9)
    assert len(parts[0].short_message) - 6 == 152  # the first part ends before the ESC
    emoji = "ক" * 66 + "😀" + "খ" * 10
    ucs2 = split(emoji, 9)
    assert ucs2[0].short_message[6:].decode("utf-16-be") == "ক" * 66


def test_settings_are_checked_and_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMPP_PASS", "s3cr3t")
    ch = build_channel(
        "smpp",
        {"host": "smsc", "system_id": "esme", "password": "env:SMPP_PASS", "source_addr": "M"},
    )
    assert "s3cr3t" not in repr(ch)
    with pytest.raises(ChannelConfigError, match="password"):
        build_channel(
            "smpp", {"host": "h", "system_id": "e", "password": "123456789", "source_addr": "M"}
        )
    with pytest.raises(ChannelConfigError, match="tps"):
        build_channel(
            "smpp",
            {"host": "h", "system_id": "e", "password": "p", "source_addr": "M", "tps": 0},
        )
