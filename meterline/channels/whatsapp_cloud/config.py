"""Settings of a ``whatsapp_cloud`` channel account, checked when the account is saved."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from meterline.channels.base import ChannelConfig, http_url
from meterline.domain.enums import LANGUAGES
from meterline.domain.notification_kinds import UnknownKind, kind_spec
from meterline.domain.templates import LocaleContext

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"

# Meta's template names: lower-case letters, digits and underscores, at most 512.
_TEMPLATE_NAME = r"^[a-z0-9_]{1,512}$"
# Meta's language codes: "en", "en_US", "pt_BR", "zh_CN" ...
_LANGUAGE_CODE = r"^[a-z]{2,3}(_[A-Z]{2})?$"


def _check_languages(value: dict[str, str]) -> dict[str, str]:
    for ours, theirs in value.items():
        if ours not in LANGUAGES:
            raise ValueError(f"language {ours!r} is not one of {', '.join(LANGUAGES)}")
        if not re.match(_LANGUAGE_CODE, theirs):
            raise ValueError(f"{theirs!r} is not a WhatsApp language code like 'en_US'")
    return value


class UrlButton(BaseModel):
    """The dynamic part of a template's URL button (a payment link's code).

    The template registered at Meta has a URL like ``https://pay.example/p/{{1}}``; we send
    the part after its fixed prefix: the value of ``variable`` with ``strip_prefix`` taken
    off, or without it, the last path segment of the value.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    variable: str = Field(min_length=1)
    strip_prefix: str | None = None
    index: int = Field(default=0, ge=0, le=9)


class TemplateSpec(BaseModel):
    """One notification kind's approved WhatsApp template."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=_TEMPLATE_NAME)
    # Our language -> Meta's code for this template's translation (default: the same code).
    languages: dict[str, str] = Field(default_factory=dict)
    body: list[str] = Field(default_factory=list)  # data variables for {{1}}, {{2}} ...
    url_button: UrlButton | None = None

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_languages(value)


class WhatsAppCloudConfig(ChannelConfig):
    graph_url: str = DEFAULT_GRAPH_URL
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    access_token: SecretStr
    app_secret: SecretStr  # keys X-Hub-Signature-256 on webhooks
    verify_token: SecretStr  # answered in the hub.challenge handshake
    # kind -> its template, used outside the 24-hour customer-service window.
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)
    # Our language -> Meta's code, for every template (a template's own map wins).
    languages: dict[str, str] = Field(default_factory=dict)
    # How template parameters are formatted (money, dates): the tenant's country,
    # currency and time zone, as its SMS texts are formatted. Required with templates
    # that have parameters (a guessed currency would be a wrong amount).
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    timezone: str | None = None
    # Free text only if the customer wrote less than 24 h minus this margin ago: our
    # message may wait in the queue, and Meta judges the window when it arrives.
    window_margin_s: float = Field(default=900, ge=0, le=6 * 3600)
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("graph_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @field_validator("templates")
    @classmethod
    def _known_kinds(cls, value: dict[str, TemplateSpec]) -> dict[str, TemplateSpec]:
        for kind, spec in value.items():
            try:
                known = kind_spec(kind).template_variables
            except UnknownKind as exc:
                raise ValueError(str(exc)) from None
            names = list(spec.body) + ([spec.url_button.variable] if spec.url_button else [])
            for name in names:
                if name not in known:
                    raise ValueError(
                        f"template for {kind}: {name!r} is not a variable of {kind}"
                        f" (has {', '.join(sorted(known))})"
                    )
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_languages(value)

    @model_validator(mode="after")
    def _locale(self) -> WhatsAppCloudConfig:
        given = [self.country, self.currency, self.timezone]
        needed = any(spec.body or spec.url_button for spec in self.templates.values())
        if None in given:
            if needed or any(v is not None for v in given):
                raise ValueError(
                    "set country, currency and timezone (the tenant's, e.g. IN, INR,"
                    " Asia/Kolkata): template parameters are formatted with them"
                )
            return self
        try:
            ZoneInfo(str(self.timezone))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"timezone: unknown time zone ({type(exc).__name__})") from None
        return self

    def locale(self, language: str) -> LocaleContext:
        """How parameters are formatted for a recipient of ``language``."""
        if self.country is None or self.currency is None or self.timezone is None:
            raise ValueError("country, currency and timezone are not set")
        return LocaleContext(language, self.country, self.currency, self.timezone)

    def language_code(self, spec: TemplateSpec, language: str) -> str:
        return spec.languages.get(language) or self.languages.get(language) or language
