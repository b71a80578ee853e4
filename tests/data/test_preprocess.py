"""Text preprocessing: a model's own vocabulary over a reused tokenizer; one shared tokenizer across threads."""

import threading

import pytest
import torch

from epee_demo.model.backbones import DEFAULT_TEXT_BASE
from epee_demo.data.preprocess import TextPreprocessor, thread_safe, vocabulary_ids

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "heart", "failure"]


@pytest.fixture(scope="module")
def minilm():
    return TextPreprocessor.for_base(DEFAULT_TEXT_BASE, max_length=16)


def test_a_vocabulary_maps_tokens_to_their_positions_and_the_rest_to_unk(minilm):
    preprocessor = TextPreprocessor(minilm.tokenizer, 16, VOCABULARY)
    plain, mapped = minilm(["heart failure", "kidney"]), preprocessor(["heart failure", "kidney"])
    assert torch.equal(mapped["attention_mask"], plain["attention_mask"])  # same split, same padding
    assert mapped["input_ids"].tolist() == [[2, 4, 5, 3], [2, 1, 3, 0]]  # kidney -> [UNK], then [PAD]
    assert int(mapped["input_ids"].max()) < len(VOCABULARY)


def test_vocabulary_ids_refuse_unknown_tokens_and_a_missing_unk_or_pad(minilm):
    with pytest.raises(ValueError, match="tokenizer has not"):
        vocabulary_ids(minilm.tokenizer, [*VOCABULARY, "no-such-token!"])
    with pytest.raises(ValueError, match="unk_token"):
        vocabulary_ids(minilm.tokenizer, ["[PAD]", "heart"])
    with pytest.raises(ValueError, match="pad_token"):
        vocabulary_ids(minilm.tokenizer, ["[UNK]", "heart"])


def test_threads_sharing_a_tokenizer_never_see_each_others_truncation(minilm):
    """Truncated batches and untruncated token counts at once on one tokenizer (the page's threads
    do so): each gets its own setting. Without the lock, dozens of the calls here get the other's."""
    note = " ".join(["chest pain radiating to the left arm with shortness of breath"] * 12)
    full_count = minilm.token_count(note)
    assert full_count > 4 * minilm.max_length
    start, wrong = threading.Barrier(4), []

    def hammer(offset: int):
        start.wait()
        for call in range(300):
            if (call + offset) % 2:
                width = minilm([note, note])["input_ids"].shape[1]
                if width > minilm.max_length:
                    wrong.append(f"a truncated batch {width} tokens wide")
            elif (count := minilm.token_count(note)) != full_count:
                wrong.append(f"a token count of {count}, not {full_count}")

    threads = [threading.Thread(target=hammer, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_tokenizer_is_made_thread_safe_once(minilm):
    locked = vars(minilm.tokenizer)["_encode_plus"]
    assert thread_safe(minilm.tokenizer) is minilm.tokenizer
    assert vars(TextPreprocessor(minilm.tokenizer, 8).tokenizer)["_encode_plus"] is locked  # one lock, shared
