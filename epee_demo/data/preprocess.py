"""Text input: checking what a person pasted, and turning texts into model tensors."""

from __future__ import annotations

import threading
import unicodedata

import torch
from transformers import AutoTokenizer

from epee_demo.model.backbones import resolve_base
from epee_demo.errors import InputError
from epee_demo.limits import MAX_NOTE_CHARS
from epee_demo.data.long_notes import head_tail_batch


def clean_note(raw) -> str:
    """A pasted or uploaded note as clean text, or an ``InputError`` saying what is wrong.

    Bytes must be UTF-8 text; control characters (other than line breaks and tabs) are
    dropped; an empty or whitespace-only note is refused; notes past ``MAX_NOTE_CHARS``
    characters are cut there (the token limit cuts them further; the page says so).
    """
    if raw is None:
        raise InputError("Please paste a clinical note (the box is empty).")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                "This file is not readable text (it is not UTF-8). Paste the note as plain text instead."
            ) from err
    if not isinstance(raw, str):
        raise InputError(f"A note must be text, not {type(raw).__name__}.")
    if not raw:
        raise InputError("Please paste a clinical note (the box is empty).")
    if "\x00" in raw:
        raise InputError("This looks like a binary file, not a note. Paste the note as plain text.")
    text = "".join(
        ch for ch in raw[:MAX_NOTE_CHARS]
        if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )
    if not text.strip():
        raise InputError("Please paste a clinical note (the box holds only spaces or invisible characters).")
    return text.strip()


class TextPreprocessor:
    """Tokenizes texts for a text backbone, cutting each at ``max_length`` tokens.

    With ``vocabulary`` (a list of the tokenizer's tokens, special tokens included) the
    model's token ids are positions in that list: the tokenizer splits a text as it always
    does, and a token outside the list becomes the tokenizer's unknown token. A model
    trained from scratch on a reused tokenizer so embeds only the tokens its training set has.
    ``long_notes`` names how a text past the window is read (``epee_demo.data.long_notes``).
    """

    def __init__(self, tokenizer, max_length: int, vocabulary: list[str] | None = None,
                 long_notes: str = "truncate"):
        self.tokenizer = thread_safe(tokenizer)  # the page's threads share it
        self.max_length = max_length
        self.model_ids = None if vocabulary is None else vocabulary_ids(tokenizer, vocabulary)
        self.long_notes = long_notes

    @classmethod
    def for_base(cls, base: str, max_length: int, vocabulary: list[str] | None = None,
                 long_notes: str = "truncate") -> "TextPreprocessor":
        """The tokenizer of a base checkpoint (``package:...``, path or hub id).

        Tokenizers without a pad token (GPT-2) pad with their end-of-sequence token;
        the attention mask keeps those positions out of the model's reading.
        """
        tokenizer = AutoTokenizer.from_pretrained(resolve_base(base))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(tokenizer, max_length, vocabulary, long_notes)

    def __call__(self, texts: list[str]) -> dict:
        if self.long_notes == "head-tail":
            batch = head_tail_batch(self.tokenizer, texts, self.max_length)
        else:
            batch = dict(self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ))
        if self.model_ids is not None:
            batch["input_ids"] = self.model_ids[batch["input_ids"]]
        return batch

    def token_count(self, text: str) -> int:
        """How many tokens the text has before truncation (special tokens included)."""
        return len(self.tokenizer(text, truncation=False)["input_ids"])


def thread_safe(tokenizer):
    """``tokenizer`` itself, its encoding made one call at a time (a lock of its own).

    A fast tokenizer sets the truncation and padding of a call on the Rust tokenizer that all
    its calls share, then encodes (both in ``_encode_plus``, where every encoding goes): without
    the lock, a concurrent untruncated call (a note's token count) can untruncate another
    thread's batch (huggingface/transformers issue 47085). A tokenizer already made so is
    returned unchanged.
    """
    if "_encode_plus" in vars(tokenizer):
        return tokenizer
    encode, lock = tokenizer._encode_plus, threading.Lock()

    def encode_one_call_at_a_time(*args, **kwargs):
        with lock:
            return encode(*args, **kwargs)

    tokenizer._encode_plus = encode_one_call_at_a_time
    return tokenizer


def vocabulary_ids(tokenizer, vocabulary: list[str]) -> torch.Tensor:
    """For every id of ``tokenizer``, its position in ``vocabulary`` (the unknown token's position
    for a token not in it): a long tensor over the tokenizer's ids. Raises ``ValueError`` when the
    vocabulary lacks the tokenizer's unknown or padding token, or holds a token the tokenizer has not."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in vocabulary if token not in vocab]
    if missing:
        raise ValueError(f"the vocabulary holds {len(missing)} tokens the tokenizer has not, e.g. {missing[:3]}")
    position = {token: index for index, token in enumerate(vocabulary)}
    for role in ("unk_token", "pad_token"):
        if getattr(tokenizer, role) not in position:
            raise ValueError(f"the vocabulary lacks the tokenizer's {role} {getattr(tokenizer, role)!r}")
    ids = torch.full((max(vocab.values()) + 1,), position[tokenizer.unk_token], dtype=torch.long)
    for token, index in position.items():
        ids[vocab[token]] = index
    return ids
