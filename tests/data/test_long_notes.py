from types import SimpleNamespace

import numpy as np
import pytest

from epee_demo.data.long_notes import TokenWindowPreprocessor, content_windows, special_tokens
from epee_demo.trace.long_texts import trace_long_texts
from epee_demo.data.preprocess import TextPreprocessor
from epee_demo.ui.analyze_tab import truncation_notice


def test_a_text_inside_the_window_is_read_whole_by_every_mode():
    for mode in ("truncate", "head-tail", "chunks"):
        assert content_windows([1, 2, 3], 5, mode) == [[1, 2, 3]]


def test_each_mode_reads_the_tokens_it_says():
    ids = list(range(20))
    assert content_windows(ids, 8, "truncate") == [ids[:8]]
    assert content_windows(ids, 8, "head-tail") == [ids[:2] + ids[14:]]  # a quarter from the head
    assert content_windows(ids, 8, "chunks") == [ids[:8], ids[8:16], ids[16:]]
    with pytest.raises(ValueError, match="unknown long-note mode"):
        content_windows(ids, 8, "middle")


def test_windows_get_the_tokenizers_special_tokens(tiny_shipped_model):
    tokenizer = tiny_shipped_model.classifier.preprocessor.tokenizer
    prefix, suffix = special_tokens(tokenizer)
    assert (prefix, suffix) == ([tokenizer.cls_token_id], [tokenizer.sep_token_id])
    ids = tokenizer("chest pain on exertion", add_special_tokens=False)["input_ids"]
    batch = TokenWindowPreprocessor(tokenizer)([ids, ids[:2]])
    assert batch["input_ids"][0].tolist() == tokenizer("chest pain on exertion")["input_ids"]
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(ids) + 2, 4]


def test_truncation_reads_as_the_tokenizer_cuts_and_chunks_average_their_windows(tiny_shipped_model):
    classifier = tiny_shipped_model.classifier
    texts = ["short note.", "long note about the heart and the lungs. " * 30]
    plain = classifier.trace(texts)
    truncated = trace_long_texts(classifier, texts, "truncate")
    np.testing.assert_allclose(truncated.probs, plain.probs, atol=1e-5)
    chunked = trace_long_texts(classifier, texts, "chunks")
    np.testing.assert_allclose(chunked.probs[0], plain.probs[0], atol=1e-5)  # one window: as it is
    tokenizer = classifier.preprocessor.tokenizer
    room = classifier.preprocessor.max_length - 2
    ids = tokenizer(texts[1], add_special_tokens=False)["input_ids"]
    windows = content_windows(ids, room, "chunks")
    assert len(windows) > 2
    runner_probs = [trace_long_texts(classifier, [tokenizer.decode(w)], "truncate").probs[0] for w in windows]
    np.testing.assert_allclose(chunked.probs[1], np.mean(runner_probs, axis=0), atol=2e-3)
    np.testing.assert_allclose(chunked.probs.sum(axis=-1), 1.0, atol=1e-5)


def test_a_head_tail_preprocessor_reads_a_long_text_by_its_head_and_tail(tiny_shipped_model):
    tokenizer = tiny_shipped_model.classifier.preprocessor.tokenizer
    text = " ".join(f"word{i}" for i in range(200))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    batch = TextPreprocessor(tokenizer, 32, long_notes="head-tail")([text, "short note"])
    assert batch["input_ids"][0].tolist() == [tokenizer.cls_token_id] + ids[:7] + ids[-23:] + [tokenizer.sep_token_id]
    assert batch["input_ids"][1].tolist()[:4] == tokenizer("short note")["input_ids"]
    assert batch["attention_mask"][1].sum() == 4
    plain = TextPreprocessor(tokenizer, 32)([text])
    assert plain["input_ids"][0].tolist()[:8] == batch["input_ids"][0].tolist()[:8]


def test_the_page_says_how_a_long_note_was_read(tiny_shipped_model):
    tokenizer = tiny_shipped_model.classifier.preprocessor.tokenizer
    text = "chest pain " * 100
    for long_notes, expected in (("head-tail", "its first 15 and its last 47, so the middle was not analyzed"),
                                 ("truncate", "reads only the first 64 tokens")):
        model = SimpleNamespace(classifier=SimpleNamespace(preprocessor=TextPreprocessor(tokenizer, 64, long_notes=long_notes)))
        assert expected in truncation_notice(model, text)
        assert truncation_notice(model, "chest pain") == ""
