"""Spotting text that looks like a personal identifier in a note, before it is analyzed.

``find_identifiers`` is a short list of regular expressions for what most often makes a
note identifiable: dates, record/ID numbers, phone numbers, e-mail and web addresses,
and names after a title. It is a prompt to check the text, not a de-identification
tool: it will miss identifiers, and the page says so. It is tuned not to fire on the
numbers clinical text is full of (lab values, units, doses, ECG leads, blood pressures).

Every pattern runs in time linear in the text: each repetition that could be retried from
many starting points is bounded (an e-mail's local part at 64 characters, as RFC 5321 allows),
and only the first ``MAX_NOTE_CHARS`` characters are read, the same prefix the model reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from epee_demo.limits import MAX_NOTE_CHARS

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"

_NAME = r"[A-Z][a-z'’-]+"

# (kind, pattern), checked in this order: a match overlapping an earlier one is dropped.
_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("e-mail address", re.compile(
        r"\b[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b")),
    ("web address", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)),
    ("record number", re.compile(
        r"\b(?:MRN|medical\s+record|record|patient\s+(?:id|number|no)|hospital\s+(?:number|no)|"
        r"NHS(?:\s+(?:number|no))?|account|acct|SSN|social\s+security|insurance(?:\s+id)?|ID)"
        r"\.?(?:\s+(?:number|no\.?|#))?\s*[:#=]?\s*[A-Z]{0,3}[-\s]?\d(?:[\s-]?\d){3,}\b",
        re.IGNORECASE,
    )),
    ("social security number", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("phone number", re.compile(
        r"\b(?:tel|telephone|phone|mobile|fax|pager)\.?(?:\s+(?:number|no\.?))?\s*[:#]?\s*"
        r"\+?\(?\d(?:[\s().-]{0,2}\d){5,}\b",
        re.IGNORECASE,
    )),
    ("phone number", re.compile(
        r"(?:\+\d{1,3}[\s.-]?)?\(\d{2,5}\)[\s.-]?\d{2,4}[\s.-]?\d{3,4}\b"  # (555) 010-2345
        r"|\+\d{1,3}(?:[\s.-]?\d){7,}\b"  # +44 20 7946 0958
        r"|\b\d{3}([.-])\d{3}\1\d{4}\b"  # 555-010-2345
        r"|\b0(?=(?:[\s-]?\d){9,10}\b)\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}\b"  # 020 7946 0958
    )),
    ("date", re.compile(
        rf"\b(?:{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
        r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d{4}|\d{2}))\b"
    )),
    ("date", re.compile(
        rf"\b(?:{_DAY}\s+(?:of\s+)?{_MONTH}\.?,?(?:\s+{_YEAR})?"
        rf"|{_MONTH}\.?\s+{_DAY}(?:,?\s+{_YEAR})?"
        rf"|{_MONTH}\.?,?\s+{_YEAR})\b"
    )),
    ("name", re.compile(
        rf"\b(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+{_NAME}"
        rf"|(?:[Pp]atient\s+)?[Nn]ame\s*:\s*{_NAME}(?:\s+{_NAME})?)"
    )),
    ("long number (record or account number?)", re.compile(r"(?<![\d.,])\d{7,}(?![\d.,]?\d)")),
)


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class IdentifierHit:
    """A stretch of a note that looks like an identifier: ``text == note[start:end]``."""

    kind: str
    text: str
    start: int
    end: int


def find_identifiers(text: str) -> list[IdentifierHit]:
    """Stretches of ``text`` (its first ``MAX_NOTE_CHARS`` characters, lone surrogates shown as
    U+FFFD) that look like personal identifiers, in order of position.

    Matches never overlap: where two patterns match the same stretch, the one listed
    first in ``_PATTERNS`` (the more specific one) is kept.
    """
    if not isinstance(text, str) or not text:
        return []
    text = _SURROGATE.sub("\ufffd", text[:MAX_NOTE_CHARS])  # a lone surrogate cannot be sent back as UTF-8
    covered = bytearray(len(text))  # 1 where an earlier hit lies: each check reads only its own stretch
    taken: list[IdentifierHit] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(covered[start:end]):
                continue
            covered[start:end] = b"\1" * (end - start)
            taken.append(IdentifierHit(kind, match.group(), start, end))
    return sorted(taken, key=lambda hit: hit.start)


def identifier_warning(text: str, shown: int = 5) -> str:
    """A Markdown warning listing what looks like an identifier in ``text``, or '' when nothing does."""
    hits = find_identifiers(text)
    if not hits:
        return ""
    items = "; ".join(f"{hit.kind} “{_shorten(hit.text)}”" for hit in hits[:shown])
    more = f" and {len(hits) - shown} more" if len(hits) > shown else ""
    return (
        f"🔒 **This note may contain identifying details** — {items}{more}. "
        "Please remove or replace them before you press Analyze: use synthetic or fully "
        "de-identified text only. (This check is a reminder, not a guarantee: it can miss identifiers.)"
    )


def _shorten(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
