import re

import pytest

from epee_demo.data import organ_notes
from epee_demo.data.organ_system import LABEL_NAMES, _split_of, icd_examples

pytestmark = pytest.mark.slow  # reads the HPO and ICD-10-CM packages


@pytest.fixture(scope="module")
def notes():
    return organ_notes.compose_notes(per_class=20, seed=13)


def test_every_system_gets_its_notes_of_several_sentences(notes):
    assert sorted(label for _, label in notes) == sorted(list(range(len(LABEL_NAMES))) * 20)
    assert all(len(re.findall(r"[.?!](?:\s|$)", text)) >= 2 for text, _ in notes)
    assert notes == organ_notes.compose_notes(per_class=20, seed=13)
    assert notes != organ_notes.compose_notes(per_class=20, seed=14)


def test_notes_hold_no_wording_of_a_validation_or_test_group(notes):
    held_out = {organ_notes._clean(text) for text, _, group in icd_examples() if _split_of(group, 13) != "train"}
    held_out = {text for text in held_out if len(text) > 40}  # specific wording, not a common term
    entries = organ_notes._icd_entries(13)
    assert not held_out & {entry for pool in entries.values() for entry in pool}
    joined = "\n".join(text for text, _ in notes)
    assert not [entry for entry in held_out if entry in joined]


def test_neoplasm_entries_also_come_in_the_words_notes_use():
    assert organ_notes._neoplasm_variants("malignant neoplasm of the lower lobe") == [
        "cancer of the lower lobe", "carcinoma of the lower lobe", "a malignant tumour of the lower lobe",
        "malignancy of the lower lobe"]
    assert organ_notes._neoplasm_variants("acute appendicitis") == []


def test_abbreviations_take_whole_words_only():
    class Always:
        def random(self):
            return 0.0

    assert organ_notes._abbreviate("cleft palate, left side; history of heart failure", Always()) == \
        "cleft palate, L side; h/o HF"
