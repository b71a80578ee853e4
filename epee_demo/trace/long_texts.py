"""A whole text's trace when it is longer than the model's window: every window traced, the exits pooled.

``scripts/eval_real_prose.py`` measures the three readings of ``epee_demo.data.long_notes`` with it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from epee_demo.data.long_notes import TokenWindowPreprocessor, content_windows, window_room
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.trace.exit_trace import ExitTrace


def trace_long_texts(classifier, texts: Sequence[str], mode: str | None = None, labels=None,
                     batch_size: int = 32) -> ExitTrace:
    """The per-exit trace of ``texts``, each read as ``mode`` says (default: the preprocessor's own).

    With ``chunks``, a text's probabilities (and state cosines) are the means over its windows.
    """
    text_preprocessor = classifier.preprocessor
    mode = mode or text_preprocessor.long_notes
    if mode == text_preprocessor.long_notes and mode != "chunks":  # the preprocessor reads so itself
        return classifier.trace(texts, labels, batch_size)
    tokenizer = text_preprocessor.tokenizer
    room = window_room(tokenizer, text_preprocessor.max_length)
    windows, owner = [], []
    for index, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        for window in content_windows(ids, room, mode):
            windows.append(window)
            owner.append(index)
    runner = MultiExitClassifier(classifier.model, classifier.spec, TokenWindowPreprocessor(tokenizer))
    order = np.argsort([len(w) for w in windows], kind="stable")
    parts = runner.trace([windows[i] for i in order], batch_size=batch_size)
    owner = np.asarray(owner)[order]
    counts = np.bincount(owner, minlength=len(texts)).astype(np.float32)
    probs = np.zeros((len(texts),) + parts.probs.shape[1:], dtype=np.float32)
    np.add.at(probs, owner, parts.probs)
    cosine = np.zeros((len(texts), parts.num_layers), dtype=np.float32)
    np.add.at(cosine, owner, parts.state_cosine)
    return ExitTrace(probs / counts[:, None, None], classifier.label_names, labels, cosine / counts[:, None])
