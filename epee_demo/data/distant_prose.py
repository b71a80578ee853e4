"""Real biomedical prose with distant organ-system labels, for training the organ-system model.

The texts come from the TRAINING splits of corpora held for other tasks (``$EPEE_DATA_DIR``):
BioRED Train and Dev abstracts (title and abstract; BioRED's Test is not read), DDI 2013
``Train/MedLine`` abstracts (sentences joined), PHEE ``train`` case-report sentences and ChemProt
``train`` sentences (entity marks removed; one copy of each sentence). GAD is not used: its
diseases are masked.

How a text is labelled (no person labelled any): a dictionary of disease names maps each name
to one organ system. Its entries are the training-group ICD-10-CM descriptions, inclusion and
index terms (organ system = chapter) and training-group HPO names and synonyms (organ system =
top-level category), the very entries ``organ_notes`` composes notes from, so no validation or
test group's wording labels anything; a name listed under two systems is dropped, and so are
names shorter than ``MIN_NAME_CHARS`` characters. Mentions are the longest dictionary names found
in the lower-cased text, word-bounded and not overlapping; for BioRED, the annotated
``DiseaseOrPhenotypicFeature`` mentions are looked up instead (the first, longest name inside a
mention), and every mention of a concept (its MeSH id in that document) takes the system its first
named mention gives, so "SLE" counts as its long form does. A text keeps the system of its mentions when at least ``MIN_MENTIONS`` mentions
(one for a single sentence) were found and at least ``AGREEMENT`` of them name that system;
otherwise it is left out. A document also in the Medical Abstracts dev half (``EXCLUDED_PMIDS``) is
left out. Texts are cut to ``MAX_CHARS`` characters.
"""

from __future__ import annotations

import json
import random
import re
import zipfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from epee_demo.data import data_dir
from epee_demo.data.organ_system import LABEL_NAMES

BIORED = Path("relation") / "biored"
DDI_ZIP = Path("relation") / "ddi2013" / "DDICorpus-2013.zip"
PHEE_TRAIN = Path("events") / "phee" / "train.json"
CHEMPROT_TRAIN = Path("relation") / "chemprot" / "train.jsonl"

# PubMed ids of documents also in the Medical Abstracts dev half (a labelled text here sharing a
# 12-word run with a dev abstract; tests/data/test_distant_prose.py checks that none is left).
EXCLUDED_PMIDS = {"2224786"}

MIN_NAME_CHARS = 5
MAX_NAME_WORDS = 8
MIN_MENTIONS = 2
AGREEMENT = 0.75
MAX_CHARS = 1200

SOURCES = ("BioRED Train and Dev abstracts (Luo et al., Briefings in Bioinformatics 2022; public domain), "
           "DDI 2013 Train/MedLine abstracts (Segura-Bedmar et al. 2013; CC BY-NC 4.0), PHEE train sentences "
           "(Sun et al. 2022; MIT), ChemProt train sentences (BioCreative VI; public domain)")
LICENCES = ("distant-prose texts: BioRED public domain; DDI 2013 CC BY-NC 4.0 (non-commercial use only); PHEE MIT; "
            "ChemProt public domain")

MODEL_LICENSE = "cc-by-nc-4.0"  # a model trained on these texts: the most restrictive source's (DDI 2013)

WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def disease_names(seed: int = 13) -> dict[tuple[str, ...], str]:
    """Training-group ICD-10-CM and HPO names as word tuples -> organ system (names under two systems dropped)."""
    from epee_demo.data.organ_notes import _hpo_entries, _icd_entries

    names, lay = _hpo_entries(seed)
    icd = _icd_entries(seed)
    systems: dict[tuple[str, ...], set] = {}
    for pools in (names, lay, icd):
        for label, entries in pools.items():
            for entry in entries:
                words = tuple(_words(entry))
                if words and len(" ".join(words)) >= MIN_NAME_CHARS and len(words) <= MAX_NAME_WORDS:
                    systems.setdefault(words, set()).add(label)
    return {words: labels.pop() for words, labels in systems.items() if len(labels) == 1}


def find_mentions(text: str, names: dict[tuple[str, ...], str]) -> list[str]:
    """The organ system of every dictionary name in ``text``: longest first, left to right, no overlaps."""
    words, found, i = _words(text), [], 0
    while i < len(words):
        for n in range(min(MAX_NAME_WORDS, len(words) - i), 0, -1):
            label = names.get(tuple(words[i:i + n]))
            if label is not None:
                found.append(label)
                i += n
                break
        else:
            i += 1
    return found


def distant_label(mentions: list[str], min_mentions: int) -> str | None:
    """The system that at least ``AGREEMENT`` of at least ``min_mentions`` mentions name, else None."""
    if len(mentions) < min_mentions:
        return None
    label, count = Counter(mentions).most_common(1)[0]
    return label if count >= AGREEMENT * len(mentions) else None


def _biored_documents(root: Path) -> list[tuple[str, list[tuple[str, str]], str]]:
    """(title and abstract, disease mentions as (text, concept id), source) per BioRED Train and Dev document."""
    documents = []
    for split in ("Train", "Dev"):
        text, mentions = {}, {}
        for line in (root / BIORED / f"{split}.PubTator").read_text(encoding="utf-8").splitlines():
            if "|t|" in line[:20] or "|a|" in line[:20]:
                pmid, _, body = line.split("|", 2)
                text[pmid] = (text.get(pmid, "") + " " + body).strip()
            elif line.count("\t") >= 5:
                pmid, _, _, mention, kind, concept = line.split("\t")[:6]
                if kind == "DiseaseOrPhenotypicFeature":
                    mentions.setdefault(pmid, []).append((mention, concept))
        documents += [(text[p], mentions.get(p, []), f"biored-{split.lower()}") for p in text]
    return documents


def biored_mention_systems(mentions: list[tuple[str, str]], names: dict[tuple[str, ...], str]) -> list[str]:
    """The organ system of every annotated mention whose concept (MeSH id) has a mention naming one: the
    first system named in the concept's first such mention, so an abbreviation takes its long form's."""
    concept_system: dict[str, str] = {}
    for text, concept in mentions:
        found = find_mentions(text, names)
        if found and concept not in concept_system:
            concept_system[concept] = found[0]
    return [concept_system[concept] for _, concept in mentions if concept in concept_system]


def _ddi_medline(root: Path) -> list[str]:
    """The DDI 2013 Train/MedLine abstracts, sentences joined."""
    texts = []
    with zipfile.ZipFile(root / DDI_ZIP) as archive:
        for name in sorted(archive.namelist()):
            if "/Train/MedLine/" in name and name.endswith(".xml"):
                document = ET.fromstring(archive.read(name))
                texts.append(" ".join(s.get("text", "") for s in document.iter("sentence")).strip())
    return texts


def _phee_sentences(root: Path) -> list[str]:
    with open(root / PHEE_TRAIN, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [row["context"] for row in rows if row["id"].split("_")[0] not in EXCLUDED_PMIDS]


def _chemprot_sentences(root: Path) -> list[str]:
    seen, texts = set(), []
    with open(root / CHEMPROT_TRAIN, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                text = re.sub(r"\s+", " ", re.sub(r"\[\[ | \]\]|<< | >>", "", json.loads(line)["text"])).strip()
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
    return texts


def labelled_texts(root: Path | None = None, seed: int = 13) -> list[tuple[str, int, str]]:
    """Every text that gets a distant label, as (text, label index, source)."""
    root = Path(root) if root is not None else data_dir()
    if root is None or not (root / BIORED / "Train.PubTator").exists():
        raise FileNotFoundError(f"the real-prose training texts need BioRED at {BIORED} under the data "
                                "directory (EPEE_DATA_DIR)")
    names = disease_names(seed)
    out = []
    for text, mentions, source in _biored_documents(root):
        label = distant_label(biored_mention_systems(mentions, names), MIN_MENTIONS)
        if label is not None:
            out.append((text[:MAX_CHARS], LABEL_NAMES.index(label), source))
    for texts, source, min_mentions in ((_ddi_medline(root), "ddi-medline", MIN_MENTIONS),
                                        (_phee_sentences(root), "phee-train", 1),
                                        (_chemprot_sentences(root), "chemprot-train", 1)):
        for text in texts:
            label = distant_label(find_mentions(text, names), min_mentions)
            if label is not None:
                out.append((text[:MAX_CHARS], LABEL_NAMES.index(label), source))
    return out


def distant_prose(per_class: int, root: Path | None = None, seed: int = 13) -> list[tuple[str, int]]:
    """At most ``per_class`` distantly labelled real texts per organ system (abstracts first), shuffled."""
    rng = random.Random(seed)
    by_label: dict[int, list[tuple[str, int, str]]] = {}
    for item in labelled_texts(root, seed):
        by_label.setdefault(item[1], []).append(item)
    chosen = []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        items.sort(key=lambda item: item[2] in ("phee-train", "chemprot-train"))  # abstracts first, stable
        chosen += [(text, label) for text, label, _ in items[:per_class]]
    rng.shuffle(chosen)
    return chosen
