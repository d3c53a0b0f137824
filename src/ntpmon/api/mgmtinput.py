"""Parsing what agents send the management API: the registration form, the token request and
the traceroute upload.

Anyone can reach these endpoints, so every way a body can be wrong ends here as
:class:`BadRequestError` with a one-line reason the handler answers 400 with. A parser that let
``ValueError``, ``OverflowError``, ``RecursionError`` or a database length error escape would
turn bad input into a 500 and a traceback in the log, which hides real bugs among noise and
lets anyone fill the log.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qs

from ntpmon.common.errors import NtpmonError
from ntpmon.traceroute.result import TraceFormatError, TraceMessage, decode_message

MAX_FORM_FIELDS = 16
MAX_FIELD_CHARS = 255  # registrations.hostname and .account_ref are VARCHAR(255)


class BadRequestError(NtpmonError):
    """Input the client must fix; the message is the one-line reason it is told."""


@dataclass(frozen=True, slots=True)
class RegistrationForm:
    """What a registration request may carry besides its Registration-ID header."""

    hostname: str = ""
    account_ref: str = ""


def _decode(body: bytes, what: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError(f"{what} is not UTF-8") from None


def _field(form: dict[str, list[str]], name: str) -> str:
    """The first value of ``name``, checked against the column it is stored in."""
    value = form.get(name, [""])[0]
    if len(value) > MAX_FIELD_CHARS:
        raise BadRequestError(f"{name} is longer than {MAX_FIELD_CHARS} characters")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise BadRequestError(f"{name} contains control characters")
    return value


def parse_registration_form(body: bytes) -> RegistrationForm:
    """``hostname`` and ``a`` (account reference) of an ``application/x-www-form-urlencoded``
    body; at most :data:`MAX_FORM_FIELDS` fields, each short enough for its column."""
    text = _decode(body, "form")
    try:
        form = parse_qs(text, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except UnicodeDecodeError:  # a %-escape that is not UTF-8
        raise BadRequestError("form is not UTF-8") from None
    except ValueError:  # the only other failure of a lenient parse_qs
        raise BadRequestError(f"form has more than {MAX_FORM_FIELDS} fields") from None
    return RegistrationForm(hostname=_field(form, "hostname"), account_ref=_field(form, "a"))


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_token_request(body: bytes) -> int:
    """``expires_in`` of ``{"expires_in": seconds}`` (an empty body asks for the default, 0).

    The value must be a JSON integer ``>= 0``: Go's decoder refuses strings, booleans and
    fractions for an ``int`` field, and ``int()`` of ``1e400`` (infinity) would overflow.
    """
    if not body.strip():
        return 0
    try:
        doc = json.loads(_decode(body, "body"), parse_constant=_no_constant)
    except RecursionError:
        raise BadRequestError("body is nested too deeply") from None
    except ValueError:  # JSONDecodeError, NaN/Infinity, an integer of too many digits
        raise BadRequestError('body must be JSON {"expires_in": seconds}') from None
    if not isinstance(doc, dict):
        raise BadRequestError('body must be a JSON object {"expires_in": seconds}')
    value = doc.get("expires_in", 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequestError("expires_in must be an integer number of seconds")
    if value < 0:
        raise BadRequestError("expires_in must not be negative")
    return value


def parse_traceroute_upload(body: bytes) -> TraceMessage:
    """An agent's traceroute upload: the MQTT message (validated by the very decoder the MQTT
    ingest uses) plus the ``Monitor`` it claims, which the handler compares with the API key's."""
    try:
        message = decode_message(body)
    except TraceFormatError as exc:
        raise BadRequestError(str(exc)) from None
    if not message.monitor:
        raise BadRequestError("Monitor is missing")
    return message
