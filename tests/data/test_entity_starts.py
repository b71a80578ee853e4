"""Relation inputs read at their entity start markers: the window around the marks and the positions."""

import pytest

from epee_demo.model.backbones import DEFAULT_TEXT_BASE
from epee_demo.data.entity_starts import EntityStartPreprocessor

PAIR = "Co-administration of [DRUG]ketoconazole[/DRUG] increases the plasma levels of [DRUG]midazolam[/DRUG]."


@pytest.fixture(scope="module")
def make():
    return lambda max_length=32, context=4: EntityStartPreprocessor.for_base(
        DEFAULT_TEXT_BASE, max_length, ["DRUG", "DRUG"], context)


def tokens(preprocessor, batch, row=0):
    ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
    return preprocessor.tokenizer.convert_ids_to_tokens(ids)


def test_each_start_points_at_the_bracket_that_opens_its_mark(make):
    preprocessor = make(max_length=64, context=64)
    batch = preprocessor([PAIR, "[DRUG]a[/DRUG] and [DRUG]b[/DRUG]"])
    for row in range(2):
        seen = tokens(preprocessor, batch, row)
        assert seen[0] == "[CLS]" and seen[-1] == "[SEP]"
        first, second = batch["entity_starts"][row].tolist()
        assert first < second and seen[first:first + 3] == seen[second:second + 3] == ["[", "drug", "]"]
    assert tokens(preprocessor, batch)[1:-1] == preprocessor.tokenizer.tokenize(PAIR)  # context 64: all of it
    assert int(batch["attention_mask"][1].sum()) < int(batch["attention_mask"][0].sum())  # padded per batch
    assert batch["token_type_ids"].shape == batch["input_ids"].shape


def test_the_window_keeps_context_tokens_each_side_of_the_marks(make):
    preprocessor = make(max_length=64, context=2)
    text = "one two three four five " + PAIR + " six seven eight nine ten"
    seen = tokens(preprocessor, preprocessor([text]))
    marked = preprocessor.tokenizer.tokenize(PAIR)[4:-1]  # from the first [DRUG] to the last [/DRUG]
    assert marked[0] == "[" and marked[-1] == "]"
    assert seen[1:-1] == ["administration", "of"] + marked + [".", "six"]


def test_a_long_text_is_cut_to_max_length_around_the_marks(make):
    preprocessor = make(max_length=40, context=50)
    text = " ".join(["word"] * 40) + " " + PAIR + " " + " ".join(["tail"] * 40)
    batch = preprocessor([text])
    seen = tokens(preprocessor, batch)
    assert len(seen) == 40 and seen.count("drug") == 4  # both marks, opening and closing
    assert seen[1] == "word" and seen[-2] == "tail"  # spare room split between both sides
    first, second = batch["entity_starts"][0].tolist()
    assert seen[first:first + 3] == seen[second:second + 3] == ["[", "drug", "]"]


def test_marks_further_apart_than_the_window_keep_both_ends(make):
    preprocessor = make(max_length=30, context=4)
    text = "[DRUG]aspirin[/DRUG] " + " ".join(["word"] * 60) + " [DRUG]warfarin[/DRUG] end"
    batch = preprocessor([text])
    seen = tokens(preprocessor, batch)
    first, second = batch["entity_starts"][0].tolist()
    assert len(seen) == 30 and first == 1 and seen[1:4] == ["[", "drug", "]"] and "word" in seen
    tail = preprocessor.tokenizer.tokenize("[DRUG]warfarin[/DRUG] end")  # shorter than half the room
    assert seen[second:-1] == tail and seen[-2] == "end"


def test_a_text_without_its_marks_points_at_cls(make):
    preprocessor = make()
    batch = preprocessor(["no marks here", "only [DRUG]one[/DRUG] drug"])
    assert batch["entity_starts"].tolist()[0] == [0, 0]
    first, second = batch["entity_starts"].tolist()[1]
    assert first > 0 and second == 0


def test_the_page_says_when_the_window_leaves_part_of_the_sentence_out(make):
    preprocessor = make(max_length=64, context=2)
    assert preprocessor.window_notice("[DRUG]a[/DRUG] and [DRUG]b[/DRUG]") == ""
    notice = preprocessor.window_notice("one two three four five " + PAIR)
    assert notice.startswith("Window: the model reads") and "2 tokens before the first mark" in notice


def test_without_a_context_the_whole_text_is_read(make):
    preprocessor = make(max_length=64, context=None)
    text = "one two three four five " + PAIR + " six seven eight nine ten"
    batch = preprocessor([text])
    assert tokens(preprocessor, batch)[1:-1] == preprocessor.tokenizer.tokenize(text)
    first, second = batch["entity_starts"][0].tolist()
    assert tokens(preprocessor, batch)[first:first + 3] == ["[", "drug", "]"] and second > first
    assert preprocessor.window_notice(text) == ""


def test_without_a_context_a_long_text_is_cut_evenly_around_the_marks(make):
    preprocessor = make(max_length=40, context=None)
    text = " ".join(["word"] * 40) + " " + PAIR + " " + " ".join(["tail"] * 40)
    batch = preprocessor([text])
    seen = tokens(preprocessor, batch)
    assert len(seen) == 40 and seen.count("drug") == 4
    first = batch["entity_starts"][0].tolist()[0]
    last = len(seen) - 1 - seen[::-1].index("]")  # the last closing mark's end
    assert abs((first - 1) - (len(seen) - 2 - last)) <= 1  # as many tokens before the marks as after
    assert seen[1] == "word" and seen[-2] == "tail"
    notice = preprocessor.window_notice(text)
    assert notice.startswith("Window: the model reads 38 of") and "around the marks" in notice
    assert "tokens before the first mark" not in notice
