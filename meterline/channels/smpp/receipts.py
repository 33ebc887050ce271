"""Delivery receipts: a deliver_sm whose esm_class says "SMSC delivery receipt".

The SMSC reports each part on its own, under the id it gave that part in submit_sm_resp.
The text follows SMPP 3.4 Appendix B (``id:... sub:... dlvrd:... submit date:... done
date:... stat:DELIVRD err:000 text:...``); many SMSCs also send the receipted_message_id
and message_state TLVs, which win when present (the text's id is sometimes reformatted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meterline.channels.base import DeliveryStatus, Outcome, StatusUpdate

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423

# esm_class bits 2-5: 0001 = SMSC delivery receipt, 0010/0100 = SME acknowledgements,
# 1000 = intermediate delivery notification.
_ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE = 0x20

_RECEIPT = re.compile(
    r"\bid:(?P<id>[^\s]+).*?\bstat:(?P<stat>[A-Za-z_]+)(?:.*?\berr:(?P<err>[^\s]+))?",
    re.DOTALL,
)

# stat: values (Appendix B) and what they mean for the message part.
STAT_STATUS: dict[str, DeliveryStatus | None] = {
    "DELIVRD": DeliveryStatus.delivered,
    "ACCEPTD": None,  # taken by the SMSC, nothing new
    "ENROUTE": None,
    "UNDELIV": DeliveryStatus.failed,
    "EXPIRED": DeliveryStatus.failed,
    "REJECTD": DeliveryStatus.failed,
    "DELETED": DeliveryStatus.failed,
    "UNKNOWN": DeliveryStatus.failed,
}

# message_state TLV values (SMPP 3.4 5.2.28) as stat: words.
MESSAGE_STATE: dict[int, str] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}


@dataclass(frozen=True)
class Receipt:
    message_id: str
    stat: str
    err: str | None

    def status_update(self) -> StatusUpdate | None:
        """The part's new status, or None for a state that changes nothing (ENROUTE)."""
        status = STAT_STATUS.get(self.stat, DeliveryStatus.failed)
        if status is None:
            return None
        if status is DeliveryStatus.delivered:
            return StatusUpdate(self.message_id, status)
        return StatusUpdate(
            self.message_id,
            status,
            error_code=self.stat
            if not self.err or not self.err.strip("0")
            else f"{self.stat}:{self.err}",
            error_text=f"SMSC receipt stat:{self.stat} err:{self.err or '-'}",
            outcome=Outcome.give_up,
        )


def is_receipt(esm_class: int) -> bool:
    return (esm_class & _ESM_TYPE_MASK) in (ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE)


def parse_receipt(short_message: bytes, tlvs: dict[int, bytes] | None = None) -> Receipt | None:
    """The receipt in a deliver_sm, or None when it carries none we can read."""
    tlvs = tlvs or {}
    text = short_message.decode("latin-1")
    found = _RECEIPT.search(text)
    message_id = found.group("id") if found else None
    stat = found.group("stat").upper() if found else None
    err = found.group("err") if found else None
    if TLV_RECEIPTED_MESSAGE_ID in tlvs:
        message_id = tlvs[TLV_RECEIPTED_MESSAGE_ID].rstrip(b"\x00").decode("ascii", "replace")
    state = tlvs.get(TLV_MESSAGE_STATE)
    if state is not None and len(state) == 1 and state[0] in MESSAGE_STATE:
        stat = MESSAGE_STATE[state[0]]
    if not message_id or not stat:
        return None
    return Receipt(message_id=message_id, stat=stat, err=err)
