"""GAD gene-disease association (BioBERT's preprocessing, fold 1): does the sentence state one?

Read from ``$EPEE_DATA_DIR/relation/gad/{train,test}.tsv``: ``sentence<TAB>label`` (train, no
header) and ``index<TAB>sentence<TAB>label`` (test, with a header). The gene and the disease are
already masked ``@GENE$`` and ``@DISEASE$`` (BLURB's "entity dummification"): the names are not
in the files, so the model never reads one. A person marks them ``[GENE]…[/GENE]`` and
``[DISEASE]…[/DISEASE]``; ``SCHEMA.model_text`` replaces each marked span by its mask before the
model reads it. Validation is a seeded 10 % of the training rows (the rows carry no document id).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from epee_demo.data import LabelledDataset, Split, data_dir
from epee_demo.data.marked import MarkSchema

FOLDER = Path("relation") / "gad"
LABEL_NAMES = ["no association", "association"]
VAL_FRACTION = 0.1

SCHEMA = MarkSchema(
    {"GENE": 1, "DISEASE": 1},
    "The Val158Met polymorphism of [GENE]COMT[/GENE] was associated with [DISEASE]schizophrenia[/DISEASE].",
    "the gene and the disease; each marked span is replaced by @GENE$ or @DISEASE$ before the model reads it",
    mask=True,
)

SOURCE = ("GAD, the Genetic Association Database corpus (Bravo et al., BMC Bioinformatics 2015), as "
          "preprocessed by BioBERT (Lee et al. 2020; fold 1 of 10), the copy BLURB uses")
LICENCE = "CC BY 4.0 (credit Bravo et al. 2015)"


def read_tsv(path: Path, header: bool) -> list[tuple[str, int]]:
    """(masked sentence, label) rows of one GAD file (the test file's index column is dropped)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        rows = [row[1:] for row in rows[1:]]
    return [(sentence, int(label)) for sentence, label in rows]


def _split(rows: list[tuple[str, int]]) -> Split:
    return Split([sentence for sentence, _ in rows], [label for _, label in rows])


def load_gad(root: Path | None = None, seed: int = 0) -> LabelledDataset:
    """Train less a seeded 10 % (validation), and the official test split of fold 1."""
    root = Path(root) if root is not None else data_dir()
    if root is None or not (root / FOLDER / "train.tsv").exists():
        raise FileNotFoundError(f"GAD is not at {FOLDER} under the data directory (EPEE_DATA_DIR)")
    train = read_tsv(root / FOLDER / "train.tsv", header=False)
    random.Random(seed).shuffle(train)
    cut = int(VAL_FRACTION * len(train))
    test = read_tsv(root / FOLDER / "test.tsv", header=True)
    return LabelledDataset("gad", list(LABEL_NAMES), _split(train[cut:]), _split(train[:cut]), _split(test),
                           SOURCE, LICENCE)
