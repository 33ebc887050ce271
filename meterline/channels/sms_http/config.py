"""Settings of the configurable HTTP SMS gateway, and what its codes and statuses mean.

Most SMS gateways in the markets we serve speak "POST a few fields, get an id back, and
receive delivery reports at a URL you give". They differ only in field names, body format,
authentication and where the answer keeps the id, so one adapter with these settings
speaks to all of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from meterline.channels.base import ChannelConfig, Outcome, http_url

ErrorMeaning = Literal["retry", "fallback", "give_up"]
# "ignore": an interim status (queued, scheduled) that moves nothing forward.
StatusMeaning = Literal["sent", "delivered", "read", "failed", "ignore"]

# Codes many gateways use in their error answers and delivery reports. An account's
# `errors` setting is merged over these; a code found in neither gives up.
DEFAULT_ERRORS: dict[str, Outcome] = {
    "throttled": Outcome.retry,
    "rate_limited": Outcome.retry,
    "too_many_requests": Outcome.retry,
    "temporary_failure": Outcome.retry,
    "system_error": Outcome.retry,
    "insufficient_credit": Outcome.retry,  # the operator tops up; the message waits
    "insufficient_balance": Outcome.retry,
    "unreachable": Outcome.fallback,
    "absent_subscriber": Outcome.fallback,
    "not_mobile": Outcome.fallback,
    "landline": Outcome.fallback,
    "invalid_number": Outcome.give_up,
    "invalid_destination": Outcome.give_up,
    "invalid_recipient": Outcome.give_up,
    "opted_out": Outcome.give_up,
    "blacklisted": Outcome.give_up,
    "blocked": Outcome.give_up,
    "dnd": Outcome.give_up,  # India's do-not-disturb registry
}

# Delivery-report statuses, matched without regard to case (SMPP's DELIVRD = delivrd).
DEFAULT_STATUS_MAP: dict[str, StatusMeaning] = {
    "queued": "ignore",
    "scheduled": "ignore",
    "accepted": "sent",
    "acceptd": "sent",
    "submitted": "sent",
    "sent": "sent",
    "enroute": "sent",
    "delivered": "delivered",
    "delivrd": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "undeliv": "failed",
    "rejected": "failed",
    "rejectd": "failed",
    "expired": "failed",
    "deleted": "failed",
}


class SmsHttpConfig(ChannelConfig):
    # Where and how to send.
    url: str
    body_format: Literal["json", "form"] = "json"
    to_field: str = Field(default="to", min_length=1)
    text_field: str = Field(default="text", min_length=1)
    sender_field: str = Field(default="from", min_length=1)
    sender: str | None = None
    # Our stable reference, so a gateway that dedupes on it never sends twice.
    reference_field: str | None = "reference"
    # Where to put our status-callback URL (None: the gateway is configured out of band).
    callback_field: str | None = None
    extra_fields: dict[str, str] = Field(default_factory=dict)
    # Batch endpoint (JSON only): up to batch_size messages per request, as
    # {batch_field: [message, ...]}, answered by a list at batch_results_path with one
    # entry per message, in order (id_path and the error paths apply to each entry).
    batch_size: int = Field(default=1, ge=1, le=1000)
    batch_field: str = Field(default="messages", min_length=1)
    batch_results_path: str = Field(default="messages", min_length=1)
    # Body fields that are secrets (an API key in the body, as many gateways want).
    secret_fields: dict[str, SecretStr] = Field(default_factory=dict)

    # Authentication: a token header, HTTP basic, both or neither.
    auth_header: str | None = None
    auth_token: SecretStr | None = None
    auth_scheme: str = "Bearer"  # "" sends the bare token (X-API-Key: <token>)
    basic_user: str | None = None
    basic_password: SecretStr | None = None

    # Reading the answer: dotted paths into the JSON body (digits index lists: "messages.0.id").
    id_path: str = Field(default="message_id", min_length=1)
    error_code_path: str | None = "error.code"
    error_text_path: str | None = "error.message"
    timeout_s: float = Field(default=10, gt=0, le=300)
    errors: dict[str, ErrorMeaning] = Field(default_factory=dict)

    # Status callbacks (delivery reports).
    callback_secret: SecretStr | None = None
    callback_secret_in: Literal["query", "header"] = "header"
    callback_secret_name: str = Field(default="X-Meterline-Secret", min_length=1)
    callback_format: Literal["json", "form", "query"] = "json"
    callback_id_field: str = Field(default="message_id", min_length=1)
    callback_status_field: str = Field(default="status", min_length=1)
    callback_error_field: str | None = "error_code"
    status_map: dict[str, StatusMeaning] = Field(
        default_factory=dict
    )  # merged over DEFAULT_STATUS_MAP

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @model_validator(mode="after")
    def _consistent(self) -> SmsHttpConfig:
        if self.batch_size > 1 and self.body_format != "json":
            raise ValueError("batch_size above 1 needs body_format json")
        if (self.auth_header is None) != (self.auth_token is None):
            raise ValueError("auth_header and auth_token go together: set both or neither")
        if (self.basic_user is None) != (self.basic_password is None):
            raise ValueError("basic_user and basic_password go together: set both or neither")
        if (
            self.basic_user is not None
            and self.auth_header is not None
            and self.auth_header.lower() == "authorization"
        ):
            raise ValueError(
                "HTTP basic auth uses the Authorization header: put the token in another header"
            )
        if self.callback_field is not None and self.callback_secret is None:
            raise ValueError(
                "callback_field needs callback_secret: unauthenticated callbacks are refused"
            )
        ours = [self.to_field, self.text_field]
        if self.sender is not None:
            ours.append(self.sender_field)
        ours += [f for f in (self.reference_field, self.callback_field) if f is not None]
        names = ours + list(self.extra_fields) + list(self.secret_fields)
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise ValueError(f"body field names used twice: {', '.join(clashes)}")
        return self
