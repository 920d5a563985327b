"""Audience rules: who may be messaged, what a callback says about it, and the settings that tune both.

Pure functions and values, no I/O: the suppression list's storage is :mod:`nxcloud_wa.suppressions`, and the send
path and the webhook apply what these functions decide. docs/audience.md is the contract; in short:

* **sources** (:func:`click_action`, :func:`text_action`, :func:`status_action`): a template button click whose
  payload is an opt-out payload adds a ``marketing`` / ``opted_out`` entry, an opt-in payload removes an opt-out;
  an inbound text equal to an opt-out keyword (whole text, not a word inside it) does the same, an opt-in keyword
  removes; a ``failed`` status with 131050 adds ``marketing`` / ``marketing_stopped``, with 131026 ``all`` /
  ``undeliverable`` for ``UNDELIVERABLE_SUPPRESSION_DAYS``, with 131049 asks for one more attempt later (not an
  entry) when ``MARKETING_LIMIT_RETRY_HOURS`` is not 0;
* **scopes** (:func:`suppresses`): a ``MARKETING`` template is stopped by ``marketing`` and ``all`` entries, a
  ``UTILITY`` or ``AUTHENTICATION`` one by ``all`` only; a category that is not known is treated as marketing, so an
  opt-out is never ignored because a category could not be learnt;
* **the marketing frequency cap** (:class:`FrequencyCap`, :class:`CapTally`; ``MARKETING_CAP_PER_RECIPIENT``, off
  by default): at most N marketing (or unknown-category) templates per recipient and business number in a rolling
  window, counted from the sends recorded in the list's table; ``UTILITY`` and ``AUTHENTICATION`` are never capped;
* **an unreadable list** (:func:`when_unreadable`): send anyway (fail open) for ``UTILITY`` / ``AUTHENTICATION`` (an
  OTP must go out), retry later for everything else.

Texts and payloads are compared after NFKC normalisation (full-width letters are letters), trimming, collapsing
inner whitespace and case folding: ``" Stop  Promotions "`` is ``stop promotions``, ``ＳＴＯＰ`` is ``stop``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from .config import EnvReader, read_settings
from .suppressions import OPT_IN_REMOVES, Key, Reason, Scope, Suppression, now_iso

MARKETING_STOPPED_CODE: Final = 131050
"""WhatsApp: the user stopped marketing messages from this business."""
UNDELIVERABLE_CODE: Final = 131026
"""WhatsApp: the message is undeliverable (no WhatsApp on the number, an old app, terms not accepted, ...)."""
MARKETING_LIMIT_CODE: Final = 131049
"""WhatsApp: not delivered "to maintain healthy ecosystem engagement", Meta's per-user marketing limit: a later
attempt may go through."""

NOT_MARKETING: Final = frozenset({"UTILITY", "AUTHENTICATION"})
"""The template categories only an ``all`` entry stops. Every other category, and an unknown one, is marketing."""

DEFAULT_OPT_OUT_PAYLOADS: Final = "Stop promotions"
"""Meta's marketing opt-out button (its label, which is also what its clicks carry)."""
DEFAULT_OPT_IN_PAYLOADS: Final = ""
DEFAULT_OPT_OUT_KEYWORDS: Final = "STOP,UNSUBSCRIBE,退订"
DEFAULT_OPT_IN_KEYWORDS: Final = "START"
DEFAULT_UNDELIVERABLE_DAYS: Final = 30
DEFAULT_MARKETING_LIMIT_RETRY_HOURS: Final = 24
DEFAULT_MARKETING_LIMIT_RETRIES: Final = 1
DAY: Final = 86_400
HOUR: Final = 3_600

_WHITESPACE = re.compile(r"\s+")
_CAP = re.compile(r"([0-9]+)/([0-9]+)([hd])")


class SuppressionCheckMode(StrEnum):
    """``enforce`` (default): a suppressed message is skipped, unsent. ``off``: the list is not read before sending
    (entries are still recorded from callbacks, so turning it on again finds them)."""

    ENFORCE = "enforce"
    OFF = "off"


class WhenUnreadable(StrEnum):
    """What to do with a message when the suppression list cannot be read."""

    SEND = "send"
    """Fail open: the message goes out unchecked (said in a metric and the log)."""
    RETRY_LATER = "retry_later"
    """Fail closed for now: the message is not sent and is tried again later."""


def normalize_text(text: str) -> str:
    """A payload, keyword or inbound text as compared: NFKC, whitespace trimmed and collapsed, case folded."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def parse_list(raw: str) -> frozenset[str]:
    """A comma-separated setting as a set of normalised entries; empty items are dropped."""
    return frozenset(item for item in map(normalize_text, raw.split(",")) if item)


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``count`` marketing templates per recipient and business number in any ``window`` seconds
    (``MARKETING_CAP_PER_RECIPIENT``; docs/audience.md, "The marketing frequency cap").

    A pair's count is its marketing sends still inside the window, each message (its tag:
    :func:`nxcloud_wa.suppressions.send_tag`) with when it went out: :meth:`recent` trims what was read, :meth:`kept`
    what is written back, so the stored count never holds more than ``count`` sends (only the newest ``count`` decide
    whether the cap is reached)."""

    count: int
    window: int
    text: str = field(default="", compare=False)
    """As configured (``1/24h``): what a skipped message's record and the API's answer quote."""

    @classmethod
    def parse(cls, raw: str) -> FrequencyCap | None:
        """``N/<int>h`` or ``N/<int>d`` (``1/24h``, ``3/7d``); empty or ``off``: no cap. ``ValueError`` otherwise."""
        text = raw.strip().lower()
        if text in {"", "off"}:
            return None
        match = _CAP.fullmatch(text)
        if match is None:
            raise ValueError("must be N/<hours>h or N/<days>d, e.g. 1/24h, or off")
        count, length, unit = int(match[1]), int(match[2]), match[3]
        if count < 1 or length < 1:
            raise ValueError("count and window must both be at least 1, e.g. 1/24h")
        return cls(count, length * (HOUR if unit == "h" else DAY), f"{count}/{length}{unit}")

    def __str__(self) -> str:
        return self.text or f"{self.count}/{self.window // HOUR}h"

    def recent(self, sends: Mapping[str, int], now: float) -> dict[str, int]:
        """The sends (message tag: epoch seconds) still inside the window at ``now``, at most the newest ``count``.
        A send exactly one window old has left it: ``1/24h`` lets a message go 24 hours to the second after the last."""
        inside = sorted((at, tag) for tag, at in sends.items() if at > now - self.window)[-self.count :]
        return {tag: at for at, tag in inside}

    def kept(self, recent: Mapping[str, int], sent: Iterable[str], now: int) -> dict[str, int]:
        """What a pair's count becomes when the messages tagged ``sent`` went out at ``now`` (one already counted
        takes the new time: it is one message): trimmed to the window and to the newest ``count``."""
        return self.recent({**recent, **dict.fromkeys(sent, now)}, now)

    def expiration(self, kept: Mapping[str, int]) -> int:
        """When a count is of no more use (its newest send has left the window): its item's TTL."""
        return max(kept.values()) + self.window


class CapTally:
    """One batch's marketing messages against the cap: each pair's sends as read, plus those this batch lets through.

    Several messages of one batch to one pair: the first that fit under the cap go on, the rest are capped (a message
    let through counts against the next even if it then fails to send: the batch errs towards not messaging). A
    message the count holds already (a redelivery, an API call repeated with its key, a copy of a message in the same
    batch) goes on and is not counted again: its claim answers it from its first send."""

    def __init__(self, cap: FrequencyCap, sent: Mapping[Key, Mapping[str, int]], now: float) -> None:
        self.cap = cap
        self.read = {key: cap.recent(sends, now) for key, sends in sent.items()}
        self._admitted: dict[Key, set[str]] = {}

    def admit(self, key: Key, tag: str) -> bool:
        """Whether the message tagged ``tag`` to ``key`` fits under the cap; counted when it does."""
        read, admitted = self.read.get(key, {}), self._admitted.setdefault(key, set())
        if tag in read or tag in admitted:
            return True
        if len(read) + len(admitted) >= self.cap.count:
            return False
        admitted.add(tag)
        return True

    def recent(self, key: Key) -> dict[str, int]:
        """The pair's sends inside the window, as read before this batch."""
        return self.read.get(key, {})


@dataclass(frozen=True, slots=True)
class AudienceSettings:
    """The audience settings (docs/configuration.md); the defaults are the stack parameters' defaults."""

    suppressions_table: str = ""
    suppression_check: SuppressionCheckMode = SuppressionCheckMode.ENFORCE
    opt_out_payloads: frozenset[str] = parse_list(DEFAULT_OPT_OUT_PAYLOADS)
    opt_in_payloads: frozenset[str] = parse_list(DEFAULT_OPT_IN_PAYLOADS)
    opt_out_keywords: frozenset[str] = parse_list(DEFAULT_OPT_OUT_KEYWORDS)
    opt_in_keywords: frozenset[str] = parse_list(DEFAULT_OPT_IN_KEYWORDS)
    undeliverable_days: int = DEFAULT_UNDELIVERABLE_DAYS
    marketing_cap: FrequencyCap | None = None
    marketing_limit_retry_hours: int = DEFAULT_MARKETING_LIMIT_RETRY_HOURS
    """0: a 131049 failure is final, as any other."""
    marketing_limit_retries: int = DEFAULT_MARKETING_LIMIT_RETRIES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AudienceSettings:
        """Read the settings; ``ConfigurationError`` naming every malformed variable."""
        return read_settings(cls.read, environ)

    @classmethod
    def read(cls, env: EnvReader) -> AudienceSettings:
        """Read through ``env``, which collects the problems (the function's settings read it with their own)."""
        return cls(
            suppressions_table=env.text("SUPPRESSIONS_TABLE"),
            suppression_check=env.choice("SUPPRESSION_CHECK", SuppressionCheckMode, SuppressionCheckMode.ENFORCE),
            opt_out_payloads=parse_list(env.text("OPT_OUT_PAYLOADS", DEFAULT_OPT_OUT_PAYLOADS)),
            opt_in_payloads=_opt_in_list(env, "OPT_IN_PAYLOADS", DEFAULT_OPT_IN_PAYLOADS),
            opt_out_keywords=parse_list(env.text("OPT_OUT_KEYWORDS", DEFAULT_OPT_OUT_KEYWORDS)),
            opt_in_keywords=_opt_in_list(env, "OPT_IN_KEYWORDS", DEFAULT_OPT_IN_KEYWORDS),
            undeliverable_days=env.positive_int("UNDELIVERABLE_SUPPRESSION_DAYS", DEFAULT_UNDELIVERABLE_DAYS),
            marketing_cap=_cap(env, "MARKETING_CAP_PER_RECIPIENT"),
            marketing_limit_retry_hours=_non_negative_int(
                env, "MARKETING_LIMIT_RETRY_HOURS", DEFAULT_MARKETING_LIMIT_RETRY_HOURS
            ),
            marketing_limit_retries=env.positive_int("MARKETING_LIMIT_RETRIES", DEFAULT_MARKETING_LIMIT_RETRIES),
        )

    @property
    def enforced(self) -> bool:
        """Whether the list is read before sending."""
        return self.suppression_check is SuppressionCheckMode.ENFORCE


def _opt_in_list(env: EnvReader, name: str, default: str) -> frozenset[str]:
    """An opt-in list: the default when the variable is unset, none when it is set empty. (An opt-out list set empty
    is its default: opt-outs cannot be switched off by clearing a parameter, opt-ins can.)"""
    return parse_list(env.env[name]) if name in env.env else parse_list(default)


def _cap(env: EnvReader, name: str) -> FrequencyCap | None:
    try:
        return FrequencyCap.parse(env.text(name))
    except ValueError as exc:
        env.problems.append(f"{name} {exc}")
        return None


def _non_negative_int(env: EnvReader, name: str, default: int) -> int:
    """An integer from 0 (``EnvReader.positive_int`` refuses 0, which is a value here: "off")."""
    raw = env.text(name)
    if not raw:
        return default
    if not raw.isascii() or not raw.isdecimal():
        env.problems.append(f"{name} must be an integer from 0")
        return default
    return int(raw)


# --- what a callback implies ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddEntry:
    """Store an entry for the callback's (business number, recipient) pair."""

    scope: Scope
    reason: Reason
    source: str
    expires_after: int | None = None
    """Seconds the entry lasts; None: permanent."""

    def entry(self, key: Key, now: float) -> Suppression:
        """The entry to store for ``key`` (normalised numbers) at ``now`` (epoch seconds)."""
        expiration = int(now) + self.expires_after if self.expires_after is not None else None
        return Suppression(key[0], key[1], self.scope, self.reason, self.source, now_iso(now), expiration)


@dataclass(frozen=True, slots=True)
class RemoveEntry:
    """Remove the pair's entry if its reason is one of ``only_reasons`` (an opt-in: :data:`OPT_IN_REMOVES`)."""

    source: str
    only_reasons: frozenset[Reason] = OPT_IN_REMOVES


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Not a suppression: send the message again after ``delay`` seconds, if it has had fewer than ``max_retries``
    such retries (Meta's per-user marketing limit, 131049)."""

    delay: int
    max_retries: int


Action = AddEntry | RemoveEntry | RetryLater


def click_action(settings: AudienceSettings, payload: str, text: str = "") -> AddEntry | RemoveEntry | None:
    """What a template button click means. The click's ``payload`` is matched, and so is its ``text`` (the label):
    Meta's opt-out button carries its label ``Stop promotions`` as payload, but NXCloud's page shows a click with
    payload ``STOP`` and text ``Stop promotions``, and an opt-out must not be missed for either. Opt-out wins when a
    click matches both lists. The entry's ``source`` is the payload as received."""
    said = {normalize_text(payload), normalize_text(text)} - {""}
    if said & settings.opt_out_payloads:
        return AddEntry(Scope.MARKETING, Reason.OPTED_OUT, payload or text)
    if said & settings.opt_in_payloads:
        return RemoveEntry(payload or text)
    return None


def text_action(settings: AudienceSettings, body: str) -> AddEntry | RemoveEntry | None:
    """What an inbound text means: the whole text (normalised) equal to an opt-out keyword adds an opt-out
    (``source`` ``keyword:<keyword>``), to an opt-in keyword removes it; anything else, nothing (``"don't stop"`` is
    not ``STOP``). Opt-out wins when a keyword is in both lists."""
    said = normalize_text(body)
    if not said:
        return None
    if said in settings.opt_out_keywords:
        return AddEntry(Scope.MARKETING, Reason.OPTED_OUT, f"keyword:{said}")
    if said in settings.opt_in_keywords:
        return RemoveEntry(f"keyword:{said}")
    return None


def status_action(settings: AudienceSettings, error_code: int | str | None) -> Action | None:
    """What a ``failed`` status's WhatsApp error code means for the audience (None for any other code)."""
    code = _code(error_code)
    if code == MARKETING_STOPPED_CODE:
        return AddEntry(Scope.MARKETING, Reason.MARKETING_STOPPED, str(code))
    if code == UNDELIVERABLE_CODE:
        return AddEntry(Scope.ALL, Reason.UNDELIVERABLE, str(code), settings.undeliverable_days * DAY)
    if code == MARKETING_LIMIT_CODE and settings.marketing_limit_retry_hours > 0:
        return RetryLater(settings.marketing_limit_retry_hours * HOUR, settings.marketing_limit_retries)
    return None


def _code(error_code: int | str | None) -> int | None:
    if isinstance(error_code, int) and not isinstance(error_code, bool):
        return error_code
    if isinstance(error_code, str) and error_code.strip().isascii() and error_code.strip().isdecimal():
        return int(error_code.strip())
    return None


# --- what suppresses what ---------------------------------------------------------------------------------------------


def is_marketing(category: str | None) -> bool:
    """Whether a template category counts as marketing: anything but ``UTILITY`` and ``AUTHENTICATION``, an unknown
    (None, empty) category included."""
    return (category or "").strip().upper() not in NOT_MARKETING


def suppresses(entry: Suppression, category: str | None) -> bool:
    """Whether ``entry`` (in force) stops a template of ``category``."""
    return entry.scope is Scope.ALL or is_marketing(category)


def suppression_for(found: Mapping[Key, Suppression], key: Key, category: str | None) -> Suppression | None:
    """The entry among a batch's lookup (:meth:`~nxcloud_wa.suppressions.SuppressionStore.lookup`) that stops a
    message of ``category`` to ``key``, or None: it may be sent."""
    entry = found.get(key)
    return entry if entry is not None and suppresses(entry, category) else None


def when_unreadable(category: str | None) -> WhenUnreadable:
    """What to do with a message whose check could not read the list: send ``UTILITY`` and ``AUTHENTICATION``
    anyway (a one-time password that waits is worthless), retry everything else later (a marketing message that
    waits loses little; one sent to someone who opted out costs the number's quality rating)."""
    return WhenUnreadable.RETRY_LATER if is_marketing(category) else WhenUnreadable.SEND
