"""Convert model folders written before the Hub layout (model.json, weights.safetensors, MODEL_CARD.md,
exit_policies.*) to it once, and prove that the weights still give the stored traces.

    python scripts/convert_to_hub_layout.py assets/<name> [assets/<other> ...] [--task T] [--no-check]

Tracked files are renamed with ``git mv`` so that their history follows. The check recomputes the
val and test traces from the converted folder's weights (learned exits included) on the task's data
(``EPEE_DATA_DIR`` for the image tasks) and compares them with the stored ones: the largest
probability difference, the examples whose predicted class differs at each layer, and the largest
difference of the state cosines and learned exit scores. It exits 1 when a prediction differs or a
probability moved by more than 1e-4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from epee_demo.model import folder as model_folder
from epee_demo.data.tasks import TASKS

TOLERANCE = 1e-4


def git_move(old: Path, new: Path) -> None:
    """``git mv`` for a tracked file, a plain rename otherwise."""
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", old.name], cwd=old.parent,
                             capture_output=True).returncode == 0
    if tracked:
        subprocess.run(["git", "mv", old.name, new.name], cwd=old.parent, check=True)
    else:
        os.replace(old, new)


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over the entries where both are finite (NaN marks layer 1's cosine); inf when NaNs differ."""
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def check_traces(folder: Path, task_name: str) -> bool:
    """Recompute the folder's traces from its weights and compare them with the stored ones."""
    classifier = model_folder.load_classifier(folder, device="cpu")
    dataset = TASKS[task_name].load_dataset()
    identical = True
    for split in model_folder.SPLITS:
        stored = model_folder.read_trace(folder, split)
        data = dataset.split(split)
        again = classifier.trace(data.inputs, data.labels)
        delta = float(np.abs(again.probs - stored.probs).max())
        flips = (again.predictions != stored.predictions).sum(axis=0).tolist()
        cosine = largest_difference(again.state_cosine, stored.state_cosine)
        scores = {k: largest_difference(again.exit_scores[k], stored.exit_scores[k]) for k in stored.exit_scores}
        same_labels = np.array_equal(again.labels, stored.labels)
        print(f"{folder} {split} ({stored.num_examples} examples): max |dp| {delta:.2e}, "
              f"argmax differences per layer {flips}, state cosine max |d| {cosine:.2e}, "
              f"learned exit scores max |d| {({k: f'{v:.2e}' for k, v in scores.items()})}, "
              f"labels {'equal' if same_labels else 'DIFFER'}", flush=True)
        identical &= delta <= TOLERANCE and not any(flips) and same_labels
    return identical


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders in the old layout")
    parser.add_argument("--task", choices=sorted(TASKS), help="their task (default: each folder's name)")
    parser.add_argument("--no-check", action="store_true", help="convert without recomputing the traces")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ok = True
    for folder in args.folders:
        task = args.task or folder.name
        if not args.no_check and task not in TASKS:
            parser.error(f"cannot tell which task {folder} is for; pass --task (one of {sorted(TASKS)})")
        renames = model_folder.convert_old_layout(folder, move=git_move)
        print(f"{folder}: " + ("; ".join(renames) if renames else "already in the Hub layout"), flush=True)
        if not args.no_check:
            ok &= check_traces(folder, task)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
