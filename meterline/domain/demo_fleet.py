"""The generated demo fleet's identities: serial, sanctioned load and opening balance of
meter number i. Shared by the fleet writer (services) and the simulator (ingest), so the
events the simulator sends name meters that exist, with the loads they were given."""

from __future__ import annotations

from decimal import Decimal


def fleet_serial(prefix: str, i: int) -> str:
    return f"{prefix}{i:08d}"


def fleet_account(prefix: str, i: int) -> str:
    return f"{prefix}-A{i:08d}"


def sanctioned_load(i: int) -> Decimal:
    """1, 2, 3 or 5 kW: the common domestic connections, in a fixed pattern."""
    return Decimal((1, 2, 2, 3, 5)[i % 5])


def opening_balance_minor(i: int) -> int:
    """20.00 to 1,519.99 in the local currency, scattered but fixed per meter."""
    return 20_00 + (i * 7_919_993) % 1500_00
