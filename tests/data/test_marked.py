"""Marked text: parsing, the messages for every kind of bad marking, highlighting and masking."""

import pytest

from epee_demo.data.marked import MarkError, MarkSchema, highlight_segments, mark
from epee_demo.errors import InputError

PAIR = MarkSchema({"DRUG": 2}, "[DRUG]a[/DRUG] with [DRUG]b[/DRUG].", "the two drugs")
GENE_DISEASE = MarkSchema({"GENE": 1, "DISEASE": 1}, "[GENE]g[/GENE] in [DISEASE]d[/DISEASE]", mask=True)


def test_parse_finds_spans_in_the_plain_text():
    marked = PAIR.parse("Use of [DRUG]aspirin[/DRUG] with [drug]warfarin[/drug] raises bleeding.")
    assert marked.plain == "Use of aspirin with warfarin raises bleeding."
    assert [(s.tag, s.text) for s in marked.spans] == [("DRUG", "aspirin"), ("DRUG", "warfarin")]
    assert all(marked.plain[s.start:s.end] == s.text for s in marked.spans)


def _message(schema, text) -> str:
    with pytest.raises(MarkError) as caught:
        schema.parse(text)
    assert isinstance(caught.value, InputError)  # the page shows it as a message, not a crash
    message = str(caught.value)
    assert "[DRUG]…[/DRUG] twice" in message or schema is not PAIR
    assert schema.example in message  # every message shows the syntax and an example
    return message


@pytest.mark.parametrize("text, expected", [
    ("aspirin with warfarin", "[DRUG]…[/DRUG] is missing"),
    ("[DRUG]aspirin[/DRUG] with warfarin", "appears 1 time(s), 2 needed"),
    ("[DRUG]aspirin with [DRUG]warfarin[/DRUG]", "opens inside [DRUG]"),
    ("[DRUG]aspirin[/DRUG] with [DRUG]warfarin", "[DRUG] is never closed"),
    ("aspirin[/DRUG] with [DRUG]warfarin[/DRUG]", "closes a mark that was never opened"),
    ("[DRUG]a[/DRUG], [DRUG]b[/DRUG] and [DRUG]c[/DRUG]", "too many [DRUG] marks: 3, at most 2"),
    ("[DRUG] [/DRUG] with [DRUG]b[/DRUG]", "marks no text"),
])
def test_bad_marks_are_named(text, expected):
    assert expected in _message(PAIR, text)


def test_crossing_marks_of_two_tags_are_refused():
    message = _message(GENE_DISEASE, "[GENE]BRCA1 [DISEASE]breast[/GENE] cancer[/DISEASE]")
    assert "may not overlap" in message


def test_other_brackets_are_text():
    marked = PAIR.parse("Clearance [CI] fell with [DRUG]a[/DRUG] and [DRUG]b[/DRUG] [ref 3].")
    assert "[CI]" in marked.plain and "[ref 3]" in marked.plain


def test_mark_inverts_parse_and_refuses_overlaps():
    text = "aspirin and warfarin"
    marked = mark(text, [(12, 20, "DRUG"), (0, 7, "DRUG")])
    assert marked == "[DRUG]aspirin[/DRUG] and [DRUG]warfarin[/DRUG]"
    assert PAIR.parse(marked).plain == text
    with pytest.raises(ValueError):
        mark(text, [(0, 7, "DRUG"), (5, 9, "DRUG")])


def test_highlight_segments_labels_marked_spans_and_never_raises():
    assert highlight_segments("x [DRUG]a[/DRUG] y [DRUG]b[/DRUG]", ["DRUG"]) == [
        ("x ", None), ("a", "DRUG"), (" y ", None), ("b", "DRUG")]
    assert highlight_segments("x [DRUG]a y", ["DRUG"]) == [("x [DRUG]a y", None)]  # unclosed: as typed
    assert highlight_segments("", ["DRUG"]) == []


def test_masked_schema_replaces_spans_by_their_masks():
    assert GENE_DISEASE.model_text("[GENE]COMT[/GENE] and [DISEASE]schizophrenia[/DISEASE].") == "@GENE$ and @DISEASE$."
    assert PAIR.model_text("[DRUG]a[/DRUG] [DRUG]b[/DRUG]") == "[DRUG]a[/DRUG] [DRUG]b[/DRUG]"  # marks kept
    shown = GENE_DISEASE.marked_from_masks("@GENE$ in @DISEASE$")
    assert shown == "[GENE]@GENE$[/GENE] in [DISEASE]@DISEASE$[/DISEASE]"
    assert GENE_DISEASE.model_text(shown) == "@GENE$ in @DISEASE$"
