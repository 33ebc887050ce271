"""Payment link codes and their signatures (pure: randomness and keys are passed in).

A link is a short random code (``/p/CODE``) stored with what it is for. The row's
signature is an HMAC-SHA256 over every field that decides what is paid (tenant, code,
account, bill, amount, currency, expiry), keyed with a key derived from the app secret:
a row changed behind our back (another amount, moved to another tenant, a later expiry)
no longer verifies and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# No 0/O, 1/l/I: a code read aloud over the phone or retyped from an SMS survives.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_LENGTH = 10  # 31**10 ≈ 8e14: unguessable at any rate a web server answers


def derive_key(app_secret: str) -> bytes:
    """A key for link signatures only, so it signs nothing else the app secret signs."""
    if not app_secret:
        raise ValueError("no app secret: set METERLINE_SECRET_KEY to sign payment links")
    return hmac.new(app_secret.encode(), b"meterline payment links v1", hashlib.sha256).digest()


def new_code(random_bytes: Callable[[int], bytes], length: int = CODE_LENGTH) -> str:
    """A random code from `ALPHABET` (rejection sampling: every letter equally likely)."""
    out: list[str] = []
    limit = 256 - 256 % len(ALPHABET)
    while len(out) < length:
        for b in random_bytes(length * 2):
            if b < limit:
                out.append(ALPHABET[b % len(ALPHABET)])
                if len(out) == length:
                    break
    return "".join(out)


def is_code(text: str) -> bool:
    return len(text) == CODE_LENGTH and all(c in ALPHABET for c in text)


@dataclass(frozen=True)
class LinkFields:
    tenant_id: int
    code: str
    account_id: int
    bill_id: int
    amount_minor: int
    currency: str
    expires_at: datetime

    def message(self) -> bytes:
        expires = int(self.expires_at.astimezone(UTC).timestamp())
        return "|".join(
            [
                "v1",
                str(self.tenant_id),
                self.code,
                str(self.account_id),
                str(self.bill_id),
                str(self.amount_minor),
                self.currency,
                str(expires),
            ]
        ).encode()


def sign(key: bytes, fields: LinkFields) -> str:
    return hmac.new(key, fields.message(), hashlib.sha256).hexdigest()


def verify(key: bytes, fields: LinkFields, signature: str) -> bool:
    return hmac.compare_digest(sign(key, fields).encode(), signature.encode())
