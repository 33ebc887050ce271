"""A real HTTP server standing in for a browser's push service (RFC 8030 / 8291 / 8292).

``subscribe(application_server_key)`` does what a browser does on
``pushManager.subscribe``: makes a P-256 key pair and a 16-byte auth secret, keeps the
private half, and gives back the ``PushSubscription`` JSON (``endpoint`` and ``keys``).
A ``POST`` to an endpoint is then checked as a push service checks it:

- ``Authorization: vapid t=<JWT>,k=<key>``: ``k`` must be the applicationServerKey the
  subscription was made with (403 otherwise, FCM's wording); the JWT must be ES256-signed
  by that key, its ``aud`` the endpoint's origin, its ``exp`` in the future and at most
  24 hours away, its ``sub`` a mailto: or https: URL (401 otherwise, autopush's JSON);
- ``TTL`` is required (400), ``Content-Encoding`` must be ``aes128gcm`` (400 otherwise),
  ``Urgency`` one of RFC 8030's values, and the body at most 4096 bytes (413);
- the body is DECRYPTED with ``http_ece`` and the subscription's private key, so a test
  asserts on the plaintext (``delivered``); an undecryptable body is 400.

Answers 201 with a ``Location``. An endpoint can be told to answer 404, 410, 413, 429
(with ``Retry-After``) or 500 instead; an unknown endpoint is 410 Gone.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.threaded_server import ThreadedServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str
    endpoint: str

    def json(self) -> dict[str, Any]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


@dataclass
class Delivered:
    endpoint: str
    headers: dict[str, str]
    claims: dict[str, Any]
    payload: dict[str, Any]  # the decrypted body, parsed as JSON


@dataclass
class _State:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    behaviours: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    delivered: list[Delivered] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # endpoint, status, why
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class VapidRefused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def verify_vapid(header: str, *, expected_key: str, audience: str, now: float) -> dict[str, Any]:
    """The JWT's claims, after checking it as RFC 8292 says; VapidRefused otherwise."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidRefused(401, "Invalid Authorization Header: not the vapid scheme")
    fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
    token, key = fields.get("t"), fields.get("k")
    if not token or not key:
        raise VapidRefused(401, "Invalid Authorization Header: t= and k= are required")
    if key.rstrip("=") != expected_key:
        raise VapidRefused(
            403,
            "the key in the authorization header does not correspond to the sender ID"
            " used to subscribe this user",
        )
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        head = json.loads(unb64url(head_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(sig_b64)
    except ValueError:
        raise VapidRefused(401, "Invalid JWT: not three base64url JSON parts") from None
    if head.get("alg") != "ES256" or len(signature) != 64:
        raise VapidRefused(401, "Invalid JWT: alg must be ES256 with a 64-byte signature")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidRefused(401, "Invalid JWT: bad signature") from None
    if claims.get("aud") != audience:
        raise VapidRefused(401, f"Invalid JWT: aud must be {audience}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise VapidRefused(401, "Invalid JWT: exp must be in the next 24 hours")
    sub = str(claims.get("sub", ""))
    if not (sub.startswith("mailto:") or sub.startswith("https://")):
        raise VapidRefused(401, "Invalid JWT: sub must be a mailto: or https: URL")
    return claims


class PushStandin:
    def __init__(self) -> None:
        self.state = _State()
        self.app = Starlette(routes=[Route("/push/{token}", self._push, methods=["POST"])])
        self.server = ThreadedServer(self.app, name="push-standin")

    # -- controls ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        """What ``pushManager.subscribe`` gives the page: ``{endpoint, keys}``."""
        token = secrets.token_urlsafe(24)
        sub = Subscription(
            token,
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
            application_server_key.rstrip("="),
            f"{self.url}/push/{token}",
        )
        with self.state.lock:
            self.state.subscriptions[token] = sub
        return sub.json()

    def answer(self, endpoint: str, status: int, retry_after: float | None = None) -> None:
        """Make ``endpoint`` answer ``status`` (404, 410, 413, 429, 500) from now on."""
        self.state.behaviours[endpoint.rsplit("/", 1)[1]] = (status, retry_after)

    @property
    def delivered(self) -> list[Delivered]:
        with self.state.lock:
            return list(self.state.delivered)

    @property
    def refused(self) -> list[tuple[str, int, str]]:
        with self.state.lock:
            return list(self.state.refused)

    def reset(self) -> None:
        with self.state.lock:
            self.state.subscriptions.clear()
            self.state.behaviours.clear()
            self.state.delivered.clear()
            self.state.refused.clear()

    def __enter__(self) -> PushStandin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    # -- the push service ----------------------------------------------------------------

    def _refuse(self, endpoint: str, status: int, why: str, body: Any = None) -> Response:
        with self.state.lock:
            self.state.refused.append((endpoint, status, why))
        if body is None:
            body = {"code": status, "errno": 0, "error": why.split(":")[0], "message": why}
        return JSONResponse(body, status_code=status)

    async def _push(self, request: Request) -> Response:
        token = request.path_params["token"]
        endpoint = f"{self.url}/push/{token}"
        body = await request.body()
        sub = self.state.subscriptions.get(token)
        if sub is None:
            return self._refuse(endpoint, 410, "Gone: no such subscription")
        behaviour = self.state.behaviours.get(token)
        if behaviour is not None:
            status, retry_after = behaviour
            response = self._refuse(endpoint, status, f"configured answer {status}")
            if retry_after is not None:
                response.headers["retry-after"] = f"{retry_after:g}"
            return response
        if len(body) > 4096:
            return self._refuse(endpoint, 413, "Payload Too Large: at most 4096 bytes")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "ttl" not in headers or not headers["ttl"].isdigit():
            return self._refuse(endpoint, 400, "Bad Request: Missing TTL header")
        if headers.get("urgency", "normal") not in ("very-low", "low", "normal", "high"):
            return self._refuse(endpoint, 400, "Bad Request: invalid Urgency header")
        parts = urlsplit(endpoint)
        try:
            claims = verify_vapid(
                headers.get("authorization", ""),
                expected_key=sub.application_server_key,
                audience=f"{parts.scheme}://{parts.netloc}",
                now=time.time(),
            )
        except VapidRefused as exc:
            return self._refuse(endpoint, exc.status, exc.why)
        if headers.get("content-encoding") != "aes128gcm":
            return self._refuse(endpoint, 400, "Bad Request: Content-Encoding must be aes128gcm")
        try:
            plaintext = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
            payload = json.loads(plaintext)
        except Exception as exc:  # any decryption failure is the sender's fault
            return self._refuse(endpoint, 400, f"Bad Request: cannot decrypt: {exc!r}")
        number = next(self.state.ids)
        with self.state.lock:
            self.state.delivered.append(Delivered(endpoint, headers, claims, payload))
        return Response(
            status_code=201,
            headers={"location": f"{self.url}/m/{number}", "ttl": headers["ttl"]},
        )
