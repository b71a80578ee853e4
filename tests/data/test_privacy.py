"""Spotting identifiers in a note: what must fire, and the clinical numbers that must not."""

import pytest

from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.data.privacy import IdentifierHit, find_identifiers, identifier_warning


@pytest.mark.parametrize("text, kind, found", [
    ("DOB 03/04/1961, presented with chest pain.", "date", "03/04/1961"),
    ("Admitted 1961-04-03 via the ED.", "date", "1961-04-03"),
    ("Seen on 3 April 1961 in clinic.", "date", "3 April 1961"),
    ("Seen on March 5th, 2021 in clinic.", "date", "March 5th, 2021"),
    ("Discharged 12.11.98 home.", "date", "12.11.98"),
    ("MRN 00123456, 70-year-old woman.", "record number", "MRN 00123456"),
    ("Medical record number: AB-123456 on file.", "record number", "Medical record number: AB-123456"),
    ("Patient ID: 4471-2290 referred.", "record number", "Patient ID: 4471-2290"),
    ("SSN 123-45-6789 on file", "record number", "SSN 123-45-6789"),
    ("ssn given: 123-45-6789", "social security number", "123-45-6789"),
    ("Call +1 (555) 010-2345 if worse.", "phone number", "+1 (555) 010-2345"),
    ("Daughter's number 555-010-2345.", "phone number", "555-010-2345"),
    ("Mobile: 07700 900123.", "phone number", "Mobile: 07700 900123"),
    ("GP practice 020 7946 0958.", "phone number", "020 7946 0958"),
    ("Reach her at +44 20 7946 0958.", "phone number", "+44 20 7946 0958"),
    ("Results to john.doe@example.com please.", "e-mail address", "john.doe@example.com"),
    ("See https://portal.example.org/p/8812 for images.", "web address", "https://portal.example.org/p/8812"),
    ("Reviewed by Dr. Okafor this morning.", "name", "Dr. Okafor"),
    ("Name: Jane Smith, 45F.", "name", "Name: Jane Smith"),
    ("Account 99812231 billed.", "record number", "Account 99812231"),
    ("Ref 20231187 sent to the lab.", "long number (record or account number?)", "20231187"),
])
def test_identifiers_are_found(text, kind, found):
    hits = find_identifiers(text)
    assert [(h.kind, h.text) for h in hits] == [(kind, found)]
    assert text[hits[0].start:hits[0].end] == found


@pytest.mark.parametrize("text", [
    "ECG shows ST elevation in leads II, III and aVF.",
    "Weight 5 kg, length 58 cm.",
    "HbA1c 11% despite metformin 1000 mg twice daily.",
    "PaCO2 52 mmHg, pH 7.31, bicarbonate 28 mmol/L.",
    "A 6 mm nodule in the right upper lobe; lesion 2/3 of the way along.",
    "BP 120/80, HR 110, RR 24, SpO2 88% on room air, T 38.5 C.",
    "Troponin 0.45 ng/mL; K 3.1 mmol/L; platelets 250,000/uL; WBC 11000.",
    "Given at 0600 1400 2200; next dose q8h; 24-hour urine protein 3.5 g.",
    "Disc herniation at L4-L5 and C5-C6; stage T2N0M0; grade 3/4 murmur.",
    "He may 2x weekly; symptoms mar sleep; ICD-10 I21.9; NYHA class III.",
    "Heparin 5000 units; INR 2.5; ejection fraction 35-40%; 1:100 dilution.",
    "Marked improvement; Decreased breath sounds; Junctional rhythm at 45.",
    "Fluid balance +1200 mL over 24 h; oxygen 2 L/min.",
    "The patient is a 62-year-old man with MS and ID consult pending.",
    "",
])
def test_clinical_numbers_are_not_identifiers(text):
    assert find_identifiers(text) == []


@pytest.mark.parametrize("note", EXAMPLE_NOTES, ids=lambda n: n.title)
def test_shipped_example_notes_raise_no_warning(note):
    assert find_identifiers(note.text) == []
    assert identifier_warning(note.text) == ""


def test_several_hits_are_ordered_and_do_not_overlap():
    text = "Jane, DOB 03/04/1961, MRN 00123456, phone +1 (555) 010-2345, john.doe@example.com"
    hits = find_identifiers(text)
    assert [h.kind for h in hits] == ["date", "record number", "phone number", "e-mail address"]
    assert all(a.end <= b.start for a, b in zip(hits, hits[1:]))
    assert all(isinstance(h, IdentifierHit) and text[h.start:h.end] == h.text for h in hits)


def test_warning_names_what_was_found_and_says_it_is_not_a_guarantee():
    warning = identifier_warning("DOB 03/04/1961 and john.doe@example.com")
    assert "date “03/04/1961”" in warning and "e-mail address “john.doe@example.com”" in warning
    assert "not a guarantee" in warning


def test_warning_lists_at_most_a_few_hits():
    text = " ".join(f"user{i}@example.com" for i in range(9))
    warning = identifier_warning(text, shown=3)
    assert warning.count("e-mail address") == 3 and "and 6 more" in warning


@pytest.mark.parametrize("junk", [None, 42, b"MRN 00123456"])
def test_non_text_gives_no_hits(junk):
    assert find_identifiers(junk) == []


# Repeated units that make a pattern with an unbounded repetition retry from every position
# (an e-mail's local part was quadratic in "1." * n: 6.7 s at 80,000 characters).
WORST_UNITS = ["1.", "a.", "1-", "1 ", "1/", "+1 ", "0 ", "ID 1 ", "a@", "a@a.", "Mr. Ab ", "1/1/2020 ", "(555) ",
               "www.a ", "1", "a"]


@pytest.mark.parametrize("unit", WORST_UNITS)
def test_every_pattern_is_fast_on_its_worst_case_at_the_cap(unit):
    """Linear time: at the cap each pattern takes milliseconds; quadratic ones took seconds."""
    import time

    from epee_demo.data.privacy import _PATTERNS, MAX_NOTE_CHARS

    text = unit * (MAX_NOTE_CHARS // len(unit) + 1)
    for kind, pattern in _PATTERNS:
        started = time.perf_counter()
        list(pattern.finditer(text[:MAX_NOTE_CHARS]))
        assert time.perf_counter() - started < 0.5, kind
    started = time.perf_counter()
    find_identifiers(text * 50)  # a megabyte: only the capped prefix is read
    assert time.perf_counter() - started < 1.0


def test_only_the_capped_prefix_is_checked():
    from epee_demo.data.privacy import MAX_NOTE_CHARS

    padding = "x" * (MAX_NOTE_CHARS - 20)
    assert [h.text for h in find_identifiers(padding + " MRN 00123456")] == ["MRN 00123456"]
    assert find_identifiers(padding + " " * 30 + "MRN 00123456") == []
