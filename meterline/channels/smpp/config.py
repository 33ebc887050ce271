"""Settings of an ``smpp`` channel account (an SMPP 3.4 bind at an operator's SMSC)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from meterline.channels.base import ChannelConfig


class SmppConfig(ChannelConfig):
    host: str = Field(min_length=1)
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretStr  # "env:NAME" reads it from the environment; at most 8 characters
    system_type: str = Field(default="", max_length=12)
    # The sender: a short code, a long number or an alphanumeric name, with its TON/NPI
    # (alphanumeric: ton 5, npi 0; international number: ton 1, npi 1).
    source_addr: str = Field(min_length=1, max_length=20)
    source_ton: int = Field(default=5, ge=0, le=6)
    source_npi: int = Field(default=0, ge=0, le=18)
    # Destinations are E.164: sent without the "+" as international numbers.
    dest_ton: int = Field(default=1, ge=0, le=6)
    dest_npi: int = Field(default=1, ge=0, le=18)
    # The throughput the operator allows on this bind, in submit_sm per second (every part
    # of a long message is one submit_sm).
    tps: float = Field(default=10.0, gt=0, le=10_000)
    window: int = Field(default=10, ge=1, le=1000)  # submit_sm awaiting an answer at once
    enquire_link_s: float = Field(default=30.0, gt=0, le=3600)
    response_timeout_s: float = Field(default=10.0, gt=0, le=300)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # How long a send waits for a link that is (re)connecting before it answers "retry".
    link_wait_s: float = Field(default=5.0, ge=0, le=300)
    reconnect_initial_s: float = Field(default=1.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)
    # After ESME_RTHROTTLED / ESME_RMSGQFUL: how long the whole bind pauses before the
    # same message is sent again.
    throttle_pause_s: float = Field(default=1.0, gt=0, le=600)
    # A long message part-way out: how often a throttled part is resent after the pause
    # before the message goes back to the queue.
    throttle_resends: int = Field(default=3, ge=0, le=100)
    registered_delivery: bool = True  # ask the SMSC for delivery receipts
    gsm7_packed: bool = False  # pack GSM-7 septets (most SMSCs take one septet per octet)
    max_parts: int = Field(default=10, ge=1, le=255)
    validity_period: str = Field(default="", max_length=16)  # SMPP time format, "" = default

    @field_validator("password")
    @classmethod
    def _password_fits(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) > 8:
            raise ValueError("an SMPP password is at most 8 characters")
        return value

    @field_validator("system_id", "system_type", "source_addr")
    @classmethod
    def _ascii(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable():
            raise ValueError("must be printable ASCII")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> SmppConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self
