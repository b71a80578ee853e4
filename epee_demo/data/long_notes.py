"""Texts longer than a text model's window: which tokens of them the model reads.

Three ways, measured against each other by ``scripts/eval_real_prose.py``:

- ``truncate``: the first ``max_length`` tokens (what the tokenizer does by itself);
- ``head-tail``: the first quarter of the window from the text's start and the rest from its
  end (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification", kept head and tail);
- ``chunks``: consecutive windows over the whole text, each run through the model, the class
  probabilities of every exit averaged over the windows (``epee_demo.trace.long_texts``).
"""

from __future__ import annotations

from typing import Sequence

LONG_NOTE_MODES = ("truncate", "head-tail", "chunks")
HEAD_FRACTION = 0.25


def head_tail_split(room: int) -> tuple[int, int]:
    """How many tokens ``head-tail`` reads from a long text's start and from its end, of ``room``."""
    head = int(room * HEAD_FRACTION)
    return head, room - head


def content_windows(token_ids: list[int], room: int, mode: str) -> list[list[int]]:
    """The token windows (special tokens not included) that ``mode`` reads of one text;
    ``room`` is how many content tokens one window holds."""
    if len(token_ids) <= room:
        return [token_ids]
    if mode == "truncate":
        return [token_ids[:room]]
    if mode == "head-tail":
        head, tail = head_tail_split(room)
        return [token_ids[:head] + token_ids[len(token_ids) - tail:]]
    if mode == "chunks":
        return [token_ids[start:start + room] for start in range(0, len(token_ids), room)]
    raise ValueError(f"unknown long-note mode {mode!r}; expected one of {LONG_NOTE_MODES}")


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The token ids the tokenizer puts before and after a text's own tokens ([CLS] and [SEP] for BERT)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    start = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
    return full[:start], full[start + len(plain):]


class TokenWindowPreprocessor:
    """Turns lists of content token ids into model tensors (special tokens added, padded)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prefix, self.suffix = special_tokens(tokenizer)

    def __call__(self, windows: list[list[int]]) -> dict:
        ids = [self.prefix + list(w) + self.suffix for w in windows]
        return dict(self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt"))


def window_room(tokenizer, max_length: int) -> int:
    """How many of a text's own tokens one window of ``max_length`` holds (special tokens aside)."""
    return max_length - sum(map(len, special_tokens(tokenizer)))


def head_tail_batch(tokenizer, texts: Sequence[str], max_length: int) -> dict:
    """Model tensors of ``texts``, each longer one read by its head and tail (``content_windows``)."""
    room = window_room(tokenizer, max_length)
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    return TokenWindowPreprocessor(tokenizer)([content_windows(i, room, "head-tail")[0] for i in ids])
