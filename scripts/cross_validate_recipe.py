"""Judge a training recipe by k-fold cross-validation over a task's training split.

A small validation split (BreastMNIST's has 78 images) cannot tell two recipes apart, and the test
split must not choose. Here each fold of the training split (stratified, seeded) is held out in turn:
the recipe trains on the other folds exactly as `epee-demo train` does (the task's settings, the
official validation split keeping the epoch), and the held-out fold is scored, so every training
image is scored once by a model that never saw it. Prints each fold's last-exit accuracy, AUC and
their mean (the score the image tasks keep their epoch by), and writes them with every exit's
figures to ``--out``:

    EPEE_DATA_DIR=../shared/data python scripts/cross_validate_recipe.py --task breast --out cv_scratch.json
    EPEE_DATA_DIR=../shared/data python scripts/cross_validate_recipe.py --task breast \\
        --backbone-from assets/pneumonia --out cv_pneumonia_backbone.json

``--set balance_classes=true`` changes a setting of the recipe, ``--spec width=64`` an argument of the
task's model spec; ``--folds-to-run 0 1`` runs some folds
only (to spread them over processes); ``--merge`` pools such runs' files into one summary.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from epee_demo.data import LabelledDataset, Split
from epee_demo.data.tasks import TASKS
from epee_demo.training.joint import TrainConfig, auc_of, per_layer_accuracy, per_layer_auc, train_model


def stratified_folds(labels: list[int], folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint index arrays covering ``labels``, each class dealt round-robin from fold 0 after a
    seeded shuffle (so the first folds may hold one example more of a class). Raises ``SystemExit`` for a
    class with fewer examples than folds (a fold without it would have no AUC). Written here because the
    project does not depend on scikit-learn, whose ``StratifiedKFold`` does this, for eight lines."""
    labels = np.asarray(labels)
    counts = {int(label): int(n) for label, n in zip(*np.unique(labels, return_counts=True))}
    if small := {label: n for label, n in counts.items() if n < folds}:
        raise SystemExit(f"classes with fewer examples than {folds} folds: {small}")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    for label in counts:
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = np.arange(len(members)) % folds
    return [np.flatnonzero(assignment == k) for k in range(folds)]


def run_fold(task, dataset: LabelledDataset, held_out: np.ndarray, config: TrainConfig,
             spec_args: dict | None = None) -> dict:
    """Train ``config``'s recipe (the task's spec, built with ``spec_args``) without the ``held_out``
    training examples; their figures per exit."""
    def pick(indices: np.ndarray) -> Split:
        return Split([dataset.train.inputs[i] for i in indices], [dataset.train.labels[i] for i in indices])

    keep = np.setdiff1d(np.arange(len(dataset.train)), held_out)
    fold_data = LabelledDataset(dataset.name, dataset.label_names, pick(keep), dataset.val, pick(held_out),
                                dataset.source, dataset.licence)
    classifier, _ = train_model(task.default_spec(dataset.label_names, **(spec_args or {})), fold_data, config,
                                augment=getattr(task, "augment", None), metric=task.metric, progress=False)
    trace = classifier.trace(fold_data.test.inputs, fold_data.test.labels)
    accuracy, auc = per_layer_accuracy(trace), per_layer_auc(trace)
    return {"held_out": held_out.tolist(), "accuracy_per_layer": accuracy, "auc_per_layer": auc,
            "score": (accuracy[-1] + auc[-1]) / 2, "last_exit_probs": np.round(trace.probs[:, -1], 4).tolist(),
            "labels": trace.labels.tolist()}


def summary(folds: dict[int, dict]) -> dict:
    """Mean of the folds' figures (per exit and at the last), and last-exit accuracy and AUC pooled over
    every held-out example."""
    probs = np.concatenate([np.asarray(f["last_exit_probs"]) for f in folds.values()])
    labels = np.concatenate([np.asarray(f["labels"]) for f in folds.values()])
    return {
        "folds": sorted(folds),
        "mean_score": float(np.mean([f["score"] for f in folds.values()])),
        "mean_accuracy": float(np.mean([f["accuracy_per_layer"][-1] for f in folds.values()])),
        "mean_auc": float(np.mean([f["auc_per_layer"][-1] for f in folds.values()])),
        "mean_accuracy_per_layer": np.mean([f["accuracy_per_layer"] for f in folds.values()], axis=0).tolist(),
        "mean_auc_per_layer": np.mean([f["auc_per_layer"] for f in folds.values()], axis=0).tolist(),
        "pooled_accuracy": float((probs.argmax(axis=1) == labels).mean()),
        "pooled_auc": auc_of(probs, labels),
    }


def parse_assignments(assignments: list[str], fields: set[str] | None = None) -> dict:
    """``NAME=JSON`` strings as a dict (``balance_classes=true`` -> ``{"balance_classes": True}``), each
    NAME one of ``fields`` where given."""
    result = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if not value or (fields is not None and name not in fields):
            raise SystemExit(f"{assignment}: give NAME=JSON" + (f" with NAME one of {sorted(fields)}" if fields else ""))
        result[name] = json.loads(value)
    return result


def overrides(assignments: list[str]) -> dict:
    """``--set``'s ``FIELD=JSON`` strings as TrainConfig fields; not the starting points, as a model of the
    same task has seen every fold (``--backbone-from`` takes another task's)."""
    return parse_assignments(assignments, set(TrainConfig.__dataclass_fields__) - {"start_from", "backbone_from"})


def check_backbone(folder: str, dataset_name: str) -> None:
    """Refuse a backbone trained on the dataset being cross-validated: it has seen the held-out folds."""
    from epee_demo.model.folder import read_metrics

    if read_metrics(Path(folder)).get("dataset") == dataset_name:
        raise SystemExit(f"--backbone-from {folder} was trained on {dataset_name}, whose folds it would have seen")


def merged(runs: list[dict]) -> dict:
    """One result from runs of disjoint folds of one setting (task, folds, fold seed, training, spec)."""
    settings = ("task", "folds", "fold_seed", "train_config", "spec_args")
    first = {k: runs[0][k] for k in settings}
    folds = {}
    for run in runs:
        if any(run[k] != first[k] for k in settings):
            raise SystemExit("--merge takes runs of one task, fold split, training and spec only")
        for k, fold in run["fold_results"].items():
            if int(k) in folds:
                raise SystemExit(f"--merge: fold {k} is in two runs")
            folds[int(k)] = {**fold, "last_exit_probs": np.round(np.asarray(fold["last_exit_probs"]), 4).tolist()}
    return {**first, "fold_results": dict(sorted(folds.items())), "summary": summary(folds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), help="the task to cross-validate (not with --merge)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the split into folds")
    parser.add_argument("--folds-to-run", type=int, nargs="+", help="these folds only (default: all)")
    parser.add_argument("--backbone-from", help="start each fold on this model folder's backbone (fresh heads)")
    parser.add_argument("--seed", type=int, help="training seed (default: the task's)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the task's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=JSON",
                        help="other TrainConfig fields, e.g. balance_classes=true label_smoothing=0")
    parser.add_argument("--spec", nargs="+", default=[], metavar="ARG=JSON",
                        help="arguments of the task's spec builder, e.g. width=64 patch_stem='\"conv\"' (image tasks)")
    parser.add_argument("--merge", nargs="+", type=Path, help="pool these runs' --out files instead of training")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.merge:
        result = merged([json.loads(path.read_text()) for path in args.merge])
    elif args.task is None:
        parser.error("give --task (or --merge)")
    else:
        task = TASKS[args.task]
        config = TrainConfig(**{**task.train_defaults, **{k: v for k, v in (
            ("backbone_from", args.backbone_from), ("seed", args.seed), ("epochs", args.epochs)) if v is not None},
            **overrides(args.set)})
        dataset = task.load_dataset()
        if config.backbone_from:
            check_backbone(config.backbone_from, dataset.name)
        splits = stratified_folds(dataset.train.labels, args.folds, args.fold_seed)
        spec_args = parse_assignments(args.spec)
        try:
            task.default_spec(dataset.label_names, **spec_args)
        except TypeError as err:
            raise SystemExit(f"--spec: the {args.task} task's spec builder refuses it ({err})") from err
        folds = {}
        for k in args.folds_to_run if args.folds_to_run is not None else range(args.folds):
            folds[k] = run_fold(task, dataset, splits[k], config, spec_args)
            f = folds[k]
            print(f"fold {k}: {len(f['labels'])} held out, last exit accuracy {f['accuracy_per_layer'][-1]:.3f} "
                  f"AUC {f['auc_per_layer'][-1]:.3f} score {f['score']:.4f}; accuracy per exit "
                  + " ".join(f"{a:.3f}" for a in f["accuracy_per_layer"]), flush=True)
        result = {"task": args.task, "folds": args.folds, "fold_seed": args.fold_seed,
                  "train_config": asdict(config), "spec_args": spec_args, "fold_results": folds, "summary": summary(folds)}
    args.out.write_text(json.dumps(result) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
