"""Status only moves forward: a late or duplicate callback never takes a message back."""

from __future__ import annotations

from meterline.domain.enums import MessageStatus

# delivered and failed share a rank: neither overrides the other (a provider's late
# "failed" after "delivered" is noise, and so is a "delivered" after it said "failed");
# read proves delivery, so it moves past both.
RANK = {
    MessageStatus.queued: 0,
    MessageStatus.sending: 1,
    MessageStatus.sent: 2,
    MessageStatus.delivered: 3,
    MessageStatus.failed: 3,
    MessageStatus.read: 4,
}

# Statuses a provider's report may set; queued and sending are ours alone.
REPORTABLE = frozenset(
    {MessageStatus.sent, MessageStatus.delivered, MessageStatus.read, MessageStatus.failed}
)


def moves_forward(current: MessageStatus, reported: MessageStatus) -> bool:
    """Whether a provider's report of `reported` should replace `current`."""
    return reported in REPORTABLE and RANK[reported] > RANK[current]


def is_final(status: MessageStatus) -> bool:
    return RANK[status] >= 3
