"""Web Push keys: a browser subscription's keys and a tenant's VAPID key pair.

A subscription (``PushSubscription.toJSON()``) carries ``p256dh``, the browser's P-256
public key as an uncompressed point (65 bytes, base64url), and ``auth``, a 16-byte
secret. VAPID (RFC 8292) keys are a P-256 pair: the private key as its 32-byte scalar and
the public key as the 65-byte point, both base64url without padding, the form
``pushManager.subscribe({applicationServerKey})`` and the usual web-push libraries use.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "SubscriptionKeys",
    "VapidKeys",
    "b64url",
    "b64url_decode",
    "check_endpoint",
    "check_subscription_keys",
    "generate_vapid_keys",
    "vapid_private_key",
]

_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Base64url (padding optional); a clear ValueError naming ``what`` otherwise."""
    cleaned = text.strip()
    if not cleaned or not _B64URL.match(cleaned):
        raise ValueError(f"{what} is not base64url text (A-Z a-z 0-9 - _)")
    try:
        return base64.urlsafe_b64decode(cleaned.rstrip("=") + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64url") from None


def _public_point(raw: bytes, what: str) -> ec.EllipticCurvePublicKey:
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError(f"{what} must be an uncompressed P-256 point (65 bytes starting 0x04)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError(f"{what} is not a point on the P-256 curve") from None


@dataclass(frozen=True)
class SubscriptionKeys:
    p256dh: str  # normalised: base64url without padding
    auth: str

    def as_details(self) -> dict[str, dict[str, str]]:
        """The contact point's ``details`` JSON (the shape the dispatcher hands adapters)."""
        return {"keys": {"p256dh": self.p256dh, "auth": self.auth}}


def check_subscription_keys(p256dh: object, auth: object) -> SubscriptionKeys:
    """A browser subscription's keys, checked; ValueError names the key and the problem."""
    if not isinstance(p256dh, str) or not p256dh.strip():
        raise ValueError("keys.p256dh is missing")
    if not isinstance(auth, str) or not auth.strip():
        raise ValueError("keys.auth is missing")
    point = b64url_decode(p256dh, "keys.p256dh")
    _public_point(point, "keys.p256dh")
    secret = b64url_decode(auth, "keys.auth")
    if len(secret) != 16:
        raise ValueError(f"keys.auth must be a 16-byte secret, not {len(secret)} bytes")
    return SubscriptionKeys(b64url(point), b64url(secret))


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def check_endpoint(endpoint: object, *, allow_local: bool = True) -> str:
    """A push subscription endpoint: an absolute https URL of a push service.

    We POST to whatever endpoint is saved, so saving one that names a local or private
    address (``allow_local=False``) is refused: it would let a caller make the server
    call itself. Plain http is accepted only for such local addresses, when allowed
    (a stand-in push service in tests and development).
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ValueError("endpoint is missing")
    value = endpoint.strip()
    if len(value) > 500:
        raise ValueError("endpoint is longer than 500 characters")
    parts = urlsplit(value)
    host = parts.hostname or ""
    local = bool(host) and _is_local(host)
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise ValueError("endpoint must be an https:// URL of the browser's push service")
    if local and not allow_local:
        raise ValueError("endpoint names a local or private address, not a push service")
    return value


@dataclass(frozen=True)
class VapidKeys:
    private_key: str  # the 32-byte scalar, base64url: a secret
    public_key: str  # the 65-byte point, base64url: for pushManager.subscribe


def generate_vapid_keys() -> VapidKeys:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(b64url(scalar), b64url(point))


def vapid_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A VAPID private key from its base64url scalar, or a PEM block; errors never quote it."""
    if "-----BEGIN" in text:
        try:
            loaded = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("is not a readable PEM private key") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
            loaded.curve, ec.SECP256R1
        ):
            raise ValueError("must be a P-256 (prime256v1) key") from None
        return loaded
    raw = b64url_decode(text, "the key")
    if len(raw) != 32:
        raise ValueError("must be the 32-byte P-256 private key in base64url (or a PEM block)")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise ValueError("is not a valid P-256 private key") from None


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def check_vapid_public_key(text: str) -> str:
    return b64url(_checked_point(text))


def _checked_point(text: str) -> bytes:
    raw = b64url_decode(text, "the key")
    _public_point(raw, "the key")
    return raw
