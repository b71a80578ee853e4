"""How does the organ-system model read real prose? Per-exit accuracy on the Medical Abstracts dev half.

The dev half (``$EPEE_DATA_DIR/real_prose/medical_abstracts_dev.csv``) is for evaluation and
model selection only: nothing here trains on it. Its classes 1-4 map to the model's Neoplasm,
Digestive, Neurological and Cardiovascular; class 5 (general pathological conditions) has no
organ system and is left out. Scoring: the model answers with its full 13-way head and an
answer counts as right only when it is the mapped class (an answer outside the four counts
wrong). Prints per-exit accuracy, EPEE at its default setting (accuracy, mean exit layer,
speed-up L / mean exit) and per-class recall of the last exit. ``--long`` says how a text past
the model's window is read (see ``epee_demo.data.long_notes``). Example:

    EPEE_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python scripts/eval_real_prose.py assets/organ-system
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from epee_demo.rules import catalogue
from epee_demo.data import data_dir
from epee_demo.data.long_notes import LONG_NOTE_MODES
from epee_demo.trace.long_texts import trace_long_texts
from epee_demo.model.folder import load_checkpoint
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.data.tasks import preprocessor_for
from epee_demo.training.joint import per_layer_accuracy, rule_summary

DEV_FILE = Path("real_prose") / "medical_abstracts_dev.csv"
CLASS_MAP = {"1": "Neoplasm", "2": "Digestive", "3": "Neurological", "4": "Cardiovascular"}


def load_dev(label_names, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """The dev half's texts of the four mappable classes and their labels in the model's label set."""
    root = data_dir()
    if root is None or not (root / DEV_FILE).exists():
        raise SystemExit(f"set EPEE_DATA_DIR to the shared data folder (it must hold {DEV_FILE})")
    with open(root / DEV_FILE, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["condition_label"] in CLASS_MAP]
    rows = rows[:limit] if limit else rows
    labels = np.array([list(label_names).index(CLASS_MAP[r["condition_label"]]) for r in rows])
    return [r["medical_abstract"] for r in rows], labels


def evaluate(folder: Path, mode: str | None, max_length: int | None, limit: int | None,
             past_window_only: bool = False) -> dict:
    """Per-exit accuracy, EPEE at default and last-exit recall per class on the dev half
    (``past_window_only``: on its abstracts longer than the window only)."""
    model, spec = load_checkpoint(folder, "cpu")
    if max_length:
        spec.preprocess = {**spec.preprocess, "max_length": max_length}
    classifier = MultiExitClassifier(model, spec, preprocessor_for(spec))
    texts, labels = load_dev(spec.label_names, limit)
    preprocessor = classifier.preprocessor
    long = np.array([preprocessor.token_count(t) > preprocessor.max_length for t in texts])
    if past_window_only:
        texts, labels, long = [t for t, keep in zip(texts, long) if keep], labels[long], long[long]
    trace = trace_long_texts(classifier, texts, mode, labels)
    epee = rule_summary(trace, "epee", **catalogue.RULES["epee"].params)
    last = trace.predictions[:, -1]
    recall = {spec.label_names[c]: float((last[labels == c] == c).mean()) for c in np.unique(labels)}
    answered = {spec.label_names[c]: {spec.label_names[p]: int(n) for p, n in zip(*np.unique(
        last[labels == c], return_counts=True)) if n >= 0.05 * (labels == c).sum()} for c in np.unique(labels)}
    return {
        "folder": str(folder), "long_notes": mode or preprocessor.long_notes, "max_length": preprocessor.max_length,
        "examples": len(labels), "accuracy_per_layer": per_layer_accuracy(trace),
        "past_window": int(long.sum()),
        "past_window_accuracy": float((trace.predictions[long, -1] == labels[long]).mean()) if long.any() else None,
        "epee_default": epee, "last_exit_recall": recall, "last_exit_answers": answered,
    }


def record(folder: Path, result: dict) -> None:
    """Keep the figures as ``real_prose_dev`` in ``metrics.json`` and rewrite the model card."""
    from epee_demo.data.tasks import TASKS
    from epee_demo.model import folder as model_folder
    from epee_demo.training.joint import dataset_options_of, model_card

    task = TASKS["organ-system"]
    metrics = model_folder.read_metrics(folder)
    metrics["real_prose_dev"] = {
        "data": "Medical Abstracts (Schopf et al. 2023; CC BY-SA 3.0), half of its test split, classes 1-4 "
                "mapped to Neoplasm, Digestive, Neurological, Cardiovascular; class 5 left out; full 13-way head, "
                "right only when it answers the mapped class. Used for evaluation and model selection, never "
                "trained on.",
        **{k: result[k] for k in ("examples", "max_length", "long_notes", "accuracy_per_layer", "epee_default",
                                  "last_exit_recall", "past_window", "past_window_accuracy")},
    }
    model_folder.write_metrics(metrics, folder)
    spec = model_folder.read_spec(folder)
    model_folder.write_card(spec, model_card(spec, task.load_dataset(**dataset_options_of(metrics)), metrics,
                                                        task.card_notes), folder, metrics)


def format_result(result: dict) -> str:
    accuracy = " ".join(f"{a:.3f}" for a in result["accuracy_per_layer"])
    epee = result["epee_default"]
    recall = ", ".join(f"{k} {v:.3f}" for k, v in result["last_exit_recall"].items())
    past = result["past_window_accuracy"]
    return (f"{result['folder']} | long notes: {result['long_notes']}, window {result['max_length']} | "
            f"{result['examples']} abstracts, {result['past_window']} past the window"
            + (f" (last exit on those: {past:.3f})" if past is not None else "") + "\n"
            f"  accuracy per exit: {accuracy}\n"
            f"  EPEE default {epee['params']}: accuracy {epee['accuracy']:.3f}, mean exit "
            f"{epee['average_exit_layer']:.2f}, speed-up {epee['speedup']:.2f}x\n"
            f"  last-exit recall: {recall}\n"
            f"  last-exit answers (5% or more of a class): {result['last_exit_answers']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="organ-system checkpoint folders")
    parser.add_argument("--long", nargs="+", choices=LONG_NOTE_MODES, default=None,
                        help="how texts past the window are read (default: the model's own)")
    parser.add_argument("--max-length", type=int, help="override the model's window (tokens)")
    parser.add_argument("--limit", type=int, help="first N abstracts only (quick checks)")
    parser.add_argument("--past-window-only", action="store_true", help="only the abstracts longer than the window")
    parser.add_argument("--json", type=Path, help="append the results to this JSON-lines file")
    parser.add_argument("--record", action="store_true",
                        help="store the result (the model's own reading) in the folder's metrics.json and card")
    args = parser.parse_args()
    if args.record and (args.long or args.max_length or args.limit or args.past_window_only):
        parser.error("--record stores the model's own reading of the whole dev half: leave out --long, "
                     "--max-length, --limit and --past-window-only")
    torch.set_num_threads(1)
    for folder in args.folders:
        for mode in args.long or [None]:
            result = evaluate(folder, mode, args.max_length, args.limit, args.past_window_only)
            print(format_result(result), flush=True)
            if args.record:
                record(folder, result)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
