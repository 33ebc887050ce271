"""A message body as the short_message payloads of its submit_sm PDUs.

The encoding and the split come from the domain (``meterline.domain.sms``), so the parts the
SMSC gets are the parts we counted and charged for, and a split never lands inside a GSM
escape sequence or a UTF-16 surrogate pair. Here they become bytes:

- GSM-7 (data_coding 0): one septet per octet (what most SMSCs take over SMPP), or packed
  seven bits at a time when the account says ``gsm7_packed``; extension characters travel as
  ESC + code;
- UCS-2 (data_coding 8): UTF-16 big-endian (characters outside the BMP as surrogate pairs);
- more than one part: a User Data Header with the 8-bit concatenation reference element
  (IEI 0x00: reference, total, number) and esm_class UDHI.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterline.domain.sms import SmsEncoding, estimate, to_gsm7_septets

DATA_CODING_GSM7 = 0x00
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40
IEI_CONCAT_8BIT = 0x00


@dataclass(frozen=True)
class Part:
    number: int  # 1-based
    total: int
    data_coding: int
    esm_class: int
    short_message: bytes


def udh_concat(reference: int, total: int, number: int) -> bytes:
    """UDHL 5, IEI 0x00 (8-bit reference), IEDL 3, reference, total, number."""
    return bytes((5, IEI_CONCAT_8BIT, 3, reference & 0xFF, total, number))


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Septets packed LSB first (TS 23.038 6.1.2.1), after ``fill_bits`` zero bits.

    The fill bits align the first septet on a septet boundary after a UDH.
    """
    out = bytearray()
    acc = 0
    bits = fill_bits
    for septet in septets:
        acc |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


def split(
    text: str, reference: int, *, gsm7_packed: bool = False, max_parts: int = 10
) -> list[Part]:
    """The submit_sm payloads for ``text``; raises ``SmsTooLong`` past ``max_parts``."""
    est = estimate(text, max_parts=max_parts)
    total = len(est.parts)
    gsm = est.encoding is SmsEncoding.gsm7
    coding = DATA_CODING_GSM7 if gsm else DATA_CODING_UCS2
    parts: list[Part] = []
    for number, chunk in enumerate(est.parts, start=1):
        udh = udh_concat(reference, total, number) if total > 1 else b""
        if gsm:
            septets = to_gsm7_septets(chunk)
            if gsm7_packed:
                # The UDH takes whole octets; pad so that the text starts on a septet boundary.
                fill = (7 - (len(udh) * 8) % 7) % 7
                payload = pack_septets(septets, fill)
            else:
                payload = bytes(septets)
        else:
            payload = chunk.encode("utf-16-be")
        parts.append(
            Part(
                number=number,
                total=total,
                data_coding=coding,
                esm_class=ESM_CLASS_UDHI if total > 1 else 0,
                short_message=udh + payload,
            )
        )
    return parts
