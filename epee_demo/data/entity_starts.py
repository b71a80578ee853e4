"""Marked relation inputs read at their entity start markers (Baldini Soares et al. 2019, "entity start").

``EntityStartPreprocessor`` tokenizes a marked text (``epee_demo.data.marked``: ``[DRUG]…[/DRUG]``)
and, besides the usual tensors, returns ``entity_starts`` [B, K]: the position of the ``[`` token
that opens each of the K marks named in ``tags`` (in order; the model's exits pool the hidden states
there, concatenated). It reads a window of the text around the marks: from ``context`` tokens
before the first opening mark to ``context`` tokens after the last closing mark (``context=None``:
the whole text), at most ``max_length`` tokens with ``[CLS]`` and ``[SEP]``; a longer window is cut
evenly on both sides of the marks; where the marks themselves span more, the
window holds the two ends (from the first opening mark on, and half the window from the last
opening mark on), so every opening mark stays in the window. A mark the text lacks points at ``[CLS]`` (position 0).
"""

from __future__ import annotations

import torch

from epee_demo.data.preprocess import TextPreprocessor


def _find(ids: list[int], pattern: list[int]) -> list[int]:
    """Every position where the token ids ``pattern`` start in ``ids``."""
    size = len(pattern)
    return [i for i in range(len(ids) - size + 1) if ids[i:i + size] == pattern]


class EntityStartPreprocessor(TextPreprocessor):
    """Tokenizes marked texts into a window around their marks, with each opening mark's position."""

    def __init__(self, tokenizer, max_length: int, tags: list[str], context: int | None):
        super().__init__(tokenizer, max_length)
        self.tags, self.context = list(tags), context
        self.opening = {tag: tokenizer(f"[{tag}]", add_special_tokens=False)["input_ids"] for tag in set(tags)}
        self.closing = {tag: tokenizer(f"[/{tag}]", add_special_tokens=False)["input_ids"] for tag in set(tags)}

    @classmethod
    def for_base(cls, base: str, max_length: int, tags: list[str],
                 context: int | None) -> "EntityStartPreprocessor":
        plain = TextPreprocessor.for_base(base, max_length)
        return cls(plain.tokenizer, max_length, tags, context)

    def window(self, ids: list[int]) -> tuple[list[int], list[int]]:
        """The token ids one text is read as (special tokens aside) and, per tag of ``tags``, the
        position of its opening mark in them (-1 where the text has none)."""
        room = self.max_length - 2
        openings = {tag: _find(ids, pattern) for tag, pattern in self.opening.items()}
        starts, used = [], {tag: 0 for tag in openings}
        for tag in self.tags:
            found = openings[tag]
            starts.append(found[used[tag]] if used[tag] < len(found) else -1)
            used[tag] += 1
        marked = [s for s in starts if s >= 0]
        if not marked:
            return ids[:room], starts
        ends = [s + len(self.closing[t]) for t in set(self.tags) for s in _find(ids, self.closing[t])]
        first, last = min(marked), max([s + len(self.opening[t]) for s, t in zip(starts, self.tags) if s >= 0] + ends)
        reach = len(ids) if self.context is None else self.context
        begin, end = max(0, first - reach), min(len(ids), last + reach)
        if last - first > room:  # the marks span more than the window: keep both ends
            tail = range(max(marked), min(len(ids), max(marked) + room // 2))
            kept = sorted(set(range(first, first + room - len(tail))) | set(tail))
        else:
            if end - begin > room:  # context cut evenly on both sides
                spare = room - (last - first)
                begin = max(0, min(first - spare // 2, len(ids) - room))
                end = begin + room
            kept = list(range(begin, end))
        where = {position: index for index, position in enumerate(kept)}
        return [ids[i] for i in kept], [where.get(s, -1) for s in starts]

    def window_notice(self, text: str) -> str:
        """For the page: which part of a marked text the model reads, when it does not read all of it."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        kept, _ = self.window(ids)
        if len(kept) == len(ids):
            return ""
        if self.context is None:
            return (f"Window: the model reads {len(kept)} of this sentence's {len(ids)} tokens, around the "
                    f"marks (at most {self.max_length} with its special tokens), as it was trained; "
                    f"see the model card.")
        return (f"Window: the model reads {len(kept)} of this sentence's {len(ids)} tokens, from {self.context} "
                f"tokens before the first mark to {self.context} after the last (at most "
                f"{self.max_length} with its special tokens), as it was trained; see the model card.")

    def __call__(self, texts: list[str]) -> dict:
        tokenizer = self.tokenizer
        rows, starts = [], []
        for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
            kept, positions = self.window(ids)
            rows.append([tokenizer.cls_token_id] + kept + [tokenizer.sep_token_id])
            starts.append([p + 1 if p >= 0 else 0 for p in positions])
        batch = dict(tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt"))
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        batch["entity_starts"] = torch.tensor(starts, dtype=torch.long)
        return batch
