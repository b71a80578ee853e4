import csv
import re

import pytest

from epee_demo.data import data_dir
from epee_demo.data import distant_prose
from epee_demo.data.organ_system import LABEL_NAMES

NAMES = {("heart", "failure"): "Cardiovascular", ("congestive", "heart", "failure"): "Cardiovascular",
         ("asthma",): "Respiratory", ("systemic", "lupus", "erythematosus"): "Blood & immune",
         ("colitis",): "Digestive"}


def test_mentions_are_the_longest_names_word_bounded_and_not_overlapping():
    text = "Congestive heart failure and asthma; no heart-failure relapse, no asthmatic or colitisX change."
    assert distant_prose.find_mentions(text, NAMES) == ["Cardiovascular", "Respiratory", "Cardiovascular"]
    assert distant_prose.find_mentions("", NAMES) == []


def test_a_text_keeps_a_system_only_when_enough_mentions_agree():
    assert distant_prose.distant_label(["Digestive"] * 3 + ["Respiratory"], 2) == "Digestive"  # 3 of 4
    assert distant_prose.distant_label(["Digestive"] * 2 + ["Respiratory"], 2) is None  # 2 of 3 < 0.75
    assert distant_prose.distant_label(["Digestive"], 2) is None
    assert distant_prose.distant_label(["Digestive"], 1) == "Digestive"
    assert distant_prose.distant_label([], 1) is None


def test_an_abbreviation_takes_the_system_of_its_concepts_named_mention():
    mentions = [("systemic lupus erythematosus", "D008180"), ("SLE", "D008180"), ("SLE", "D008180"),
                ("fever", "D005334"), ("asthma", "D001249")]
    assert distant_prose.biored_mention_systems(mentions, NAMES) == ["Blood & immune"] * 3 + ["Respiratory"]


needs_data = pytest.mark.skipif(data_dir() is None, reason="needs EPEE_DATA_DIR (BioRED, DDI, PHEE, ChemProt)")


def _runs(text: str, n: int = 12) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


@pytest.mark.slow
@needs_data
def test_real_texts_come_from_every_training_corpus_and_none_from_the_dev_half():
    texts = distant_prose.labelled_texts()
    sources = {source for _, _, source in texts}
    assert sources == {"biored-train", "biored-dev", "ddi-medline", "phee-train", "chemprot-train"}
    assert all(0 <= label < len(LABEL_NAMES) and len(text) <= distant_prose.MAX_CHARS for text, label, _ in texts)
    dev_file = data_dir() / "real_prose" / "medical_abstracts_dev.csv"
    with open(dev_file, newline="", encoding="utf-8") as handle:
        dev = set().union(*(_runs(row["medical_abstract"]) for row in csv.DictReader(handle)))
    assert not [text for text, _, _ in texts if _runs(text) & dev]
    chosen = distant_prose.distant_prose(50)
    assert chosen == distant_prose.distant_prose(50) and len(chosen) == len(set(chosen))
    assert max(sum(label == c for _, label in chosen) for c in range(len(LABEL_NAMES))) == 50


@pytest.mark.slow
@needs_data
def test_real_texts_join_the_training_split_only_weighted_by_their_copies():
    from epee_demo.data.organ_system import load_organ_system

    plain = load_organ_system()
    weighted = load_organ_system(real_prose_per_class=20, real_prose_copies=3)
    real = distant_prose.distant_prose(20)
    assert len(weighted.train) == len(plain.train) + 3 * len(real)
    assert sorted(weighted.train.inputs) == sorted(plain.train.inputs + [text for text, _ in real] * 3)
    for split in ("val", "test"):
        assert sorted(zip(weighted.split(split).inputs, weighted.split(split).labels)) == \
            sorted(zip(plain.split(split).inputs, plain.split(split).labels))
