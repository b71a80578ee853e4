"""DDIExtraction 2013: the interaction type of a pair of drugs in a sentence (5 classes).

Read from the official XML corpus zip (``$EPEE_DATA_DIR/relation/ddi2013/DDICorpus-2013.zip``)
with ``zipfile`` and ``xml.etree``: ``Train/`` (DrugBank and MedLine) for training and
validation, ``Test/Test for DDI Extraction task/`` for test. One example per ``<pair>``: the
sentence with both drugs marked ``[DRUG]…[/DRUG]`` (``epee_demo.data.marked``). A
discontinuous drug mention (``charOffset`` "a-b;c-d") is marked on one fragment (``_marked_pair``). The one training pair marked ``ddi="true"`` without a
type is left out. Validation is a seeded 5 % of the training documents; negative training pairs
are subsampled (``NEGATIVES_PER_POSITIVE`` by default); validation and test keep every pair.
"""

from __future__ import annotations

import hashlib
import random
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

from epee_demo.data import LabelledDataset, Split, data_dir
from epee_demo.data.marked import MarkSchema, mark

LABEL_NAMES = ["negative", "mechanism", "effect", "advise", "int"]
POSITIVE_LABELS = [1, 2, 3, 4]
CORPUS = Path("relation") / "ddi2013" / "DDICorpus-2013.zip"
TEST_FOLDER = "Test for DDI Extraction task"
NEGATIVES_PER_POSITIVE = 1.5
VAL_FRACTION = 0.05

SCHEMA = MarkSchema(
    {"DRUG": 2},
    "Co-administration of [DRUG]ketoconazole[/DRUG] increases the plasma levels of [DRUG]midazolam[/DRUG].",
    "the two drugs of the pair",
)

SOURCE = ("DDIExtraction 2013 corpus (DrugBank and MedLine; official XML, Segura-Bedmar, Martínez and "
          "Herrero-Zazo, \"The DDI corpus: an annotated corpus with pharmacological substances and "
          "drug-drug interactions\", J Biomed Inform 46(5), 2013)")
LICENCE = ("CC BY-NC 4.0: non-commercial use only, with credit to the DDI corpus authors "
           "(Segura-Bedmar et al. 2013)")


@dataclass(frozen=True)
class DrugPair:
    """One annotated pair: its document, pair id, the marked sentence and its label name."""

    document: str
    pair_id: str
    text: str
    label: str


def _fragments(offset: str) -> list[tuple[int, int]]:
    """A mention's character fragments; the corpus's end offsets are inclusive."""
    return [(int(start), int(end) + 1) for start, end in (part.split("-") for part in offset.split(";"))]


def _marked_pair(sentence: str, first: list[tuple[int, int]], second: list[tuple[int, int]]) -> str:
    """The sentence with both mentions marked, each on its first fragment; where that fragment
    overlaps the other mention's (coordinated mentions such as "ND and AI vaccines"), the second
    mention is marked on its first fragment that does not."""
    a = first[0]
    b = next((f for f in second if f[1] <= a[0] or f[0] >= a[1]), None)
    if b is None:
        b = second[0]
        a = next(f for f in first if f[1] <= b[0] or f[0] >= b[1])
    return mark(sentence, [(*a, "DRUG"), (*b, "DRUG")])


def parse_document(xml_bytes: bytes) -> list[DrugPair]:
    """Every typed or negative drug pair of one corpus document."""
    root = ET.fromstring(xml_bytes)
    pairs = []
    for sentence in root.iter("sentence"):
        offsets = {e.get("id"): _fragments(e.get("charOffset")) for e in sentence.iter("entity")}
        for pair in sentence.iter("pair"):
            if pair.get("ddi") == "true":
                label = pair.get("type")
                if label is None:
                    continue
            else:
                label = "negative"
            text = _marked_pair(sentence.get("text"), offsets[pair.get("e1")], offsets[pair.get("e2")])
            pairs.append(DrugPair(root.get("id"), pair.get("id"), text, label.lower()))
    return pairs


def read_corpus(path: Path) -> dict[str, list[DrugPair]]:
    """The ``train`` and ``test`` pairs of the corpus zip, in the zip's file order."""
    splits = {"train": [], "test": []}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".xml"):
                continue
            parts = name.split("/")
            split = "train" if "Train" in parts else "test" if TEST_FOLDER in parts else None
            if split:
                splits[split] += parse_document(archive.read(name))
    return splits


def _in_val(document: str) -> bool:
    digest = hashlib.sha256(document.encode()).digest()
    return digest[0] < 256 * VAL_FRACTION


def _split(pairs: list[DrugPair]) -> Split:
    return Split([p.text for p in pairs], [LABEL_NAMES.index(p.label) for p in pairs])


def negatives_kept(negatives: int, positives: int, negatives_per_positive: float) -> int:
    """How many of the training documents' ``negatives`` negative pairs ``load_ddi`` keeps."""
    return min(negatives, int(negatives_per_positive * positives))


def load_ddi(root: Path | None = None, negative_sample_seed: int = 0,
             negatives_per_positive: float = NEGATIVES_PER_POSITIVE) -> LabelledDataset:
    """Train (every positive pair and ``negatives_per_positive`` negative pairs per positive, a
    subsample seeded by ``negative_sample_seed``), validation (held-out training documents) and the
    complete official test set, from the corpus zip under ``root`` (default: the data directory)."""
    root = Path(root) if root is not None else data_dir()
    if root is None or not (root / CORPUS).exists():
        raise FileNotFoundError(f"the DDI corpus is not at {CORPUS} under the data directory (EPEE_DATA_DIR)")
    corpus = read_corpus(root / CORPUS)
    train = [p for p in corpus["train"] if not _in_val(p.document)]
    val = [p for p in corpus["train"] if _in_val(p.document)]
    positives = [p for p in train if p.label != "negative"]
    negatives = [p for p in train if p.label == "negative"]
    rng = random.Random(negative_sample_seed)
    keep = rng.sample(negatives, negatives_kept(len(negatives), len(positives), negatives_per_positive))
    train = positives + keep
    rng.shuffle(train)
    return LabelledDataset("ddi", list(LABEL_NAMES), _split(train), _split(val), _split(corpus["test"]),
                           SOURCE, LICENCE)
