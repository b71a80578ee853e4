"""Text preprocessing: a model's own vocabulary over a reused tokenizer."""

import pytest
import torch

from epee_demo.model.backbones import DEFAULT_TEXT_BASE
from epee_demo.data.preprocess import TextPreprocessor, vocabulary_ids

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
