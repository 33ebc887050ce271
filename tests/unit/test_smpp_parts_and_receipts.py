"""SMPP payload bytes, receipt parsing and the parts' roll-up, without a network."""

from __future__ import annotations

import pytest

from meterline.channels.base import DeliveryStatus
from meterline.channels.smpp.parts import pack_septets, split, udh_concat
from meterline.channels.smpp.receipts import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    is_receipt,
    parse_receipt,
)
from meterline.domain.enums import MessageStatus
from meterline.domain.sms import to_gsm7_septets
from meterline.services.message_parts import rolled_up


def test_septets_pack_as_in_the_spec_example() -> None:
    # TS 23.038's classic example: "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37.
    assert pack_septets(to_gsm7_septets("hellohello")).hex().upper() == "E8329BFD4697D9EC37"


def test_packed_parts_after_a_udh_start_on_a_septet_boundary() -> None:
    # A 6-octet UDH is 48 bits; one fill bit makes 49 = 7 septets.
    assert pack_septets([0x7F], fill_bits=1) == bytes([0xFE])


def test_the_concatenation_header() -> None:
    assert udh_concat(0x1AB, 3, 2) == bytes([5, 0, 3, 0xAB, 3, 2])


def test_a_one_part_message_has_no_header() -> None:
    (part,) = split("Hello [world]", 1)
    assert part.esm_class == 0 and part.data_coding == 0
    assert part.short_message == bytes(to_gsm7_septets("Hello [world]"))


def test_a_ucs2_part_is_utf16_big_endian() -> None:
    (part,) = split("Привет 😀", 1)
    assert part.data_coding == 8 and part.short_message == "Привет 😀".encode("utf-16-be")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b"id:0123abcd sub:001 dlvrd:001 submit date:2611291200 done date:2611291201 "
            b"stat:DELIVRD err:000 text:Your bill",
            ("0123abcd", "DELIVRD", "000"),
        ),
        (b"id:77 sub:001 dlvrd:000 stat:undeliv err:0a1", ("77", "UNDELIV", "0a1")),
        (b"id:88 stat:EXPIRED", ("88", "EXPIRED", None)),
    ],
)
def test_receipt_texts(text: bytes, expected: tuple[str, str, str | None]) -> None:
    receipt = parse_receipt(text)
    assert receipt is not None
    assert (receipt.message_id, receipt.stat, receipt.err) == expected


def test_the_tlvs_win_over_the_text() -> None:
    receipt = parse_receipt(
        b"id:12345 stat:ENROUTE",
        {TLV_RECEIPTED_MESSAGE_ID: b"3039\x00", TLV_MESSAGE_STATE: bytes([5])},
    )
    assert receipt is not None and (receipt.message_id, receipt.stat) == ("3039", "UNDELIV")
    update = receipt.status_update()
    assert update is not None and update.status is DeliveryStatus.failed


def test_what_each_stat_means() -> None:
    def status(stat: str, err: str = "000") -> tuple[object, object]:
        r = parse_receipt(f"id:1 stat:{stat} err:{err}".encode())
        assert r is not None
        u = r.status_update()
        return (u.status, u.error_code) if u else (None, None)

    assert status("DELIVRD") == (DeliveryStatus.delivered, None)
    assert status("ENROUTE") == (None, None)
    assert status("ACCEPTD") == (None, None)
    assert status("REJECTD") == (DeliveryStatus.failed, "REJECTD")
    assert status("UNDELIV", "034") == (DeliveryStatus.failed, "UNDELIV:034")
    assert status("WHATEVER") == (DeliveryStatus.failed, "WHATEVER")


def test_only_receipt_esm_classes_are_receipts() -> None:
    assert is_receipt(0x04) and is_receipt(0x20)
    assert not is_receipt(0x00) and not is_receipt(0x40)


def test_nothing_readable_is_no_receipt() -> None:
    assert parse_receipt(b"hello there") is None


S, D, F = MessageStatus.sent, MessageStatus.delivered, MessageStatus.failed


@pytest.mark.parametrize(
    ("parts", "total", "expected"),
    [
        ([D, D, D], 3, D),
        ([D, D, S], 3, None),
        ([D, D], 3, None),  # a part not taken yet
        ([D, F, S], 3, F),
        ([F], 3, F),
        ([D, MessageStatus.read], 2, D),
    ],
)
def test_parts_roll_up(parts: list[MessageStatus], total: int, expected: object) -> None:
    assert rolled_up(parts, total) == expected
