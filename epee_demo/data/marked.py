"""Marked text: entity, trigger and argument spans typed into a sentence as ``[TAG]span[/TAG]``.

One syntax for every relation and event task. A task's ``MarkSchema`` says which tags it needs
and how many of each (drug-drug interactions: two ``DRUG`` marks; an event's type: one
``TRIGGER``). ``MarkSchema.parse`` checks a text against it and raises ``MarkError`` with a
message that shows the syntax and an example; ``highlight_segments`` splits a text into
(segment, tag) pairs for the page and never raises. The marks stay in the text the model reads
(as plain characters: the tokenizer splits ``[DRUG]`` into ``[``, ``drug``, ``]``), so what a
person types is what the model was trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from epee_demo.errors import InputError


def _mark_pattern(tags) -> re.Pattern:
    """Opening and closing marks of the given tags, any letter case; other brackets are text."""
    return re.compile(r"\[(/?)(" + "|".join(re.escape(t) for t in tags) + r")\]", re.IGNORECASE)


class MarkError(InputError):
    """A marked text that does not fit its task's schema (the message says how to fix it)."""


@dataclass(frozen=True)
class Span:
    """One marked span: its tag, and where its text lies in the text with the marks removed."""

    tag: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class MarkedText:
    """A parsed marked text: ``plain`` (the marks removed) and its ``spans``, in order of opening."""

    plain: str
    spans: tuple[Span, ...]


def mark(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` with ``[TAG]`` and ``[/TAG]`` around each (start, end, tag) character span.

    The spans must not overlap (a ``ValueError`` otherwise)."""
    ordered = sorted(spans)
    for (_, end, _), (start, _, _) in zip(ordered, ordered[1:]):
        if start < end:
            raise ValueError(f"marked spans overlap: {ordered}")
    pieces, at = [], 0
    for start, end, tag in ordered:
        pieces += [text[at:start], f"[{tag}]", text[start:end], f"[/{tag}]"]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


def _scan(text: str, tags) -> tuple[str, list[Span], list[str]]:
    """The plain text, the well-formed spans of ``tags``, and a problem for each ill-formed mark."""
    plain, spans, problems, open_tag, open_at, at = [], [], [], None, 0, 0
    length = 0
    for match in _mark_pattern(tags).finditer(text):
        plain.append(text[at:match.start()])
        length += match.start() - at
        at = match.end()
        closing, tag = match.group(1) == "/", match.group(2).upper()
        if not closing and open_tag is None:
            open_tag, open_at = tag, length
        elif not closing:
            problems.append(f"[{tag}] opens inside [{open_tag}]…: marks may not overlap or nest; "
                            f"close [/{open_tag}] first")
        elif open_tag is None:
            problems.append(f"[/{tag}] closes a mark that was never opened")
        elif tag != open_tag:
            problems.append(f"[/{tag}] closes [{open_tag}]: marks may not overlap; close [/{open_tag}] first")
            open_tag = None
        else:
            span_text = "".join(plain)[open_at:length]
            if not span_text.strip():
                problems.append(f"[{tag}][/{tag}] marks no text")
            spans.append(Span(tag, open_at, length, span_text))
            open_tag = None
    plain.append(text[at:])
    if open_tag is not None:
        problems.append(f"[{open_tag}] is never closed: add [/{open_tag}] after its text")
    return "".join(plain), spans, problems


@dataclass(frozen=True)
class MarkSchema:
    """The marks a task's inputs need: each tag with the exact number of times it must occur,
    and an example sentence that fits (shown in every error message)."""

    counts: dict[str, int]
    example: str
    meaning: str = ""  # what the marks stand for, for the page ("the two drugs of the pair")
    mask: bool = False  # the model reads @TAG$ in place of each marked span (BLURB's dummification)

    @property
    def syntax(self) -> str:
        """The syntax in words: ``[DRUG]…[/DRUG] twice`` and so on."""
        times = {1: "once", 2: "twice"}
        return ", ".join(f"[{tag}]…[/{tag}] {times.get(n, f'{n} times')}" for tag, n in self.counts.items())

    def help(self) -> str:
        """How to mark an input for this task: the syntax, what it means, an example."""
        meaning = f" ({self.meaning})" if self.meaning else ""
        return f"Mark {self.syntax}{meaning}, e.g.: {self.example}"

    def parse(self, text: str) -> MarkedText:
        """The marked text parsed and checked against the schema, or a ``MarkError`` naming every
        missing, unclosed, overlapping or surplus mark, with the syntax and an example. Only the
        schema's tags are marks: other bracketed words ("[CI]") are text."""
        plain, spans, problems = _scan(text, self.counts)
        found = {}
        for span in spans:
            found[span.tag] = found.get(span.tag, 0) + 1
        for tag, wanted in self.counts.items():
            have = found.get(tag, 0)
            if have < wanted:
                problems.append(f"[{tag}]…[/{tag}] is missing" if have == 0 else
                                f"[{tag}]…[/{tag}] appears {have} time(s), {wanted} needed")
            elif have > wanted:
                problems.append(f"too many [{tag}] marks: {have}, at most {wanted}")
        if problems:
            raise MarkError("; ".join(problems) + ". " + self.help())
        return MarkedText(plain, tuple(spans))


    def model_text(self, text: str) -> str:
        """The text the model reads: checked (``parse``); with ``mask``, each marked span and its
        marks replaced by ``@TAG$``; otherwise the text as typed, marks included."""
        marked = self.parse(text)
        if not self.mask:
            return text
        pieces, at = [], 0
        for span in sorted(marked.spans, key=lambda s: s.start):
            pieces += [marked.plain[at:span.start], f"@{span.tag}$"]
            at = span.end
        return "".join(pieces + [marked.plain[at:]])


    def marked_from_masks(self, text: str) -> str:
        """A masked text (``@GENE$``) in the marked syntax (``[GENE]@GENE$[/GENE]``), for showing a
        masked dataset's sentence as an input a person could type; other texts come back unchanged."""
        if self.mask:
            for tag in self.counts:
                text = text.replace(f"@{tag}$", f"[{tag}]@{tag}$[/{tag}]")
        return text


def highlight_segments(text: str, tags) -> list[tuple[str, str | None]]:
    """``text`` as (segment, tag or None) pairs with the marks of ``tags`` removed, for highlighting; a text
    whose marks do not pair up comes back whole, unhighlighted (this never raises)."""
    plain, spans, problems = _scan(text, tags)
    if problems or not spans:
        return [(text, None)] if text else []
    segments, at = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start > at:
            segments.append((plain[at:span.start], None))
        segments.append((span.text, span.tag))
        at = span.end
    if at < len(plain):
        segments.append((plain[at:], None))
    return segments
