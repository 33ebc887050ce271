"""Meta's WhatsApp Cloud API error codes and what each means for a message.

Codes come in a send's answer (``{"error": {"code": 131026, ...}}``) and later in a
``failed`` status webhook (``errors[0].code``); both go through these tables.
See https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes.
"""

from __future__ import annotations

from meterline.channels.base import Outcome

# The number is not a WhatsApp account (or cannot receive business messages: old app,
# terms not accepted, blocked us). Remembered on the contact; later messages skip WhatsApp.
UNREACHABLE = frozenset({"131026"})

ERRORS: dict[str, Outcome] = {
    "131026": Outcome.fallback,  # message undeliverable: not on WhatsApp
    # Rate limits: the same message again, later.
    "4": Outcome.retry,  # app's API call rate limit
    "80007": Outcome.retry,  # WhatsApp Business Account rate limit
    "130429": Outcome.retry,  # Cloud API throughput reached
    "131056": Outcome.retry,  # pair rate limit: too many messages to this number at once
    # Meta's own trouble.
    "1": Outcome.retry,  # API unknown (invalid request or possible server error)
    "2": Outcome.retry,  # API service: temporary downtime or overload
    "131000": Outcome.retry,  # something went wrong
    "131016": Outcome.retry,  # service unavailable
    # This message cannot go by WhatsApp now, but the number is on WhatsApp: send it by
    # the next channel, remember nothing about the number.
    "131049": Outcome.fallback,  # Meta chose not to deliver (per-user marketing limit)
    "131050": Outcome.fallback,  # the user stopped marketing messages
    "130472": Outcome.fallback,  # the user's number is part of an experiment
    "131048": Outcome.fallback,  # spam rate limit on our number: SMS rather than wait
    # Outside the customer-service window: the adapter resends as a template at once when
    # one is configured (see WhatsAppCloudChannel.send); reaching the table means none is.
    "131047": Outcome.give_up,
    # Our request was wrong: retrying the same request would fail the same way.
    "100": Outcome.give_up,  # invalid parameter
    "131008": Outcome.give_up,  # required parameter missing
    "131009": Outcome.give_up,  # parameter value invalid
    "131021": Outcome.give_up,  # recipient is our own number
    "131051": Outcome.give_up,  # unsupported message type
    "131052": Outcome.give_up,  # media download error
    "131053": Outcome.give_up,  # media upload error
    # Template trouble: an operator must fix the template (see TEMPLATE_ERRORS).
    "132000": Outcome.give_up,
    "132001": Outcome.give_up,
    "132005": Outcome.give_up,
    "132007": Outcome.give_up,
    "132012": Outcome.give_up,
    "132015": Outcome.give_up,
    "132016": Outcome.give_up,
    "132068": Outcome.give_up,
    "132069": Outcome.give_up,
}

# Codes that say the template (or our use of it) is wrong: the operator-facing reason.
TEMPLATE_ERRORS: dict[str, str] = {
    "132000": "the number of parameters does not match the template's placeholders",
    "132001": "the template does not exist in this language (or is not approved yet)",
    "132005": "the template's text with its parameters is too long",
    "132007": "the template's content breaks WhatsApp's formatting policy",
    "132012": "a parameter does not have the format the template expects",
    "132015": "the template is paused for low quality",
    "132016": "the template is disabled",
    "132068": "the template's flow is blocked",
    "132069": "the template's flow is throttled",
}

# Codes that mean the account's settings are wrong: nothing gets through until an
# operator fixes them, so the account is paused, not retried.
CONFIG_ERRORS: dict[str, str] = {
    "0": "Meta could not authenticate the access token (expired or invalid)",
    "190": "Meta says the access token has expired or is invalid",
    "3": "the app lacks the capability to send WhatsApp messages",
    "10": "the access token lacks permission for this phone number (whatsapp_business_messaging)",
    "33": "the phone_number_id does not exist or was deleted",
    "368": "the WhatsApp Business Account is blocked for a policy violation",
    "131031": "the WhatsApp Business Account is locked",
    "131042": "the WhatsApp Business Account has a payment problem",
    "133010": "the business phone number is not registered with the Cloud API",
}
CONFIG_ERROR_RANGE = range(200, 300)  # API permission codes 200-299

# How long to wait on each rate limit when Meta sends no Retry-After (seconds).
RETRY_AFTER: dict[str, float] = {
    "4": 60.0,  # the app's limit is counted over an hour; a minute is a sensible step
    "80007": 60.0,
    "130429": 5.0,  # throughput: a few seconds frees room
    "131056": 10.0,  # pair limit: about one message per 6 s to one number
}


def config_problem(code: str | None) -> str | None:
    """The operator-facing reason when ``code`` means the account's settings are wrong."""
    if code is None:
        return None
    if code in CONFIG_ERRORS:
        return CONFIG_ERRORS[code]
    if code.isdigit() and int(code) in CONFIG_ERROR_RANGE:
        return "the access token lacks an API permission this send needs"
    return None
