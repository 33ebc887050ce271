"""SMPP 3.4 PDUs as bytes: the header, the few small PDUs, and command statuses by name.

``submit_sm`` is encoded and ``deliver_sm`` decoded by the ``smpp34`` codec; the PDUs left
(bind, enquire_link, unbind, generic_nack and the responses we send) are a header and a few
C-octet strings, built here with ``struct``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
MAX_PDU = 64 * 1024  # far above any real PDU: a length past this is a broken stream

RESPONSE = 0x80000000
GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

INTERFACE_VERSION = 0x34

# command_status values (SMPP 3.4, section 5.1.3) we name in errors and the error table.
STATUS_NAMES: dict[int, str] = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL",
    0x14: "ESME_RMSGQFUL",
    0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS",
    0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI",
    0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM",
    0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM",
    0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}

ESME_ROK = 0x00
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RINVCMDID = 0x03


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for 0x58; an unlisted (vendor) status as its hex value."""
    return STATUS_NAMES.get(status, f"0x{status:08X}")


@dataclass(frozen=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes

    @property
    def raw(self) -> bytes:
        return encode(self.command_id, self.status, self.sequence, self.body)


def encode(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def cstring(value: str, max_octets: int, field: str) -> bytes:
    """A C-octet string (ASCII, NUL-terminated) no longer than the spec allows, NUL included."""
    data = value.encode("ascii")
    if len(data) + 1 > max_octets:
        raise ValueError(f"{field} is longer than {max_octets - 1} characters")
    return data + b"\x00"


def read_cstring(body: bytes, start: int = 0) -> tuple[str, int]:
    """The C-octet string at ``start`` and the offset after its NUL (a missing NUL: to end)."""
    end = body.find(b"\x00", start)
    if end < 0:
        return body[start:].decode("ascii", "replace"), len(body)
    return body[start:end].decode("ascii", "replace"), end + 1


def bind_transceiver_body(
    system_id: str,
    password: str,
    system_type: str,
    addr_ton: int = 0,
    addr_npi: int = 0,
    address_range: str = "",
) -> bytes:
    return (
        cstring(system_id, 16, "system_id")
        + cstring(password, 9, "password")
        + cstring(system_type, 13, "system_type")
        + bytes((INTERFACE_VERSION, addr_ton, addr_npi))
        + cstring(address_range, 41, "address_range")
    )
