"""Does depth matter for a shipped image model? Print what its exits say, layer by layer.

Per exit: accuracy and AUC on validation and test, how often it agrees with the last exit on
test, recall of each class on test, and its training loss in the first and the kept epoch
(when the metrics record it). Beside them, the floor any exit should beat: a softmax
regression on the raw pixels (L2 weight chosen on validation, classes weighted as the model's
training weighted them). Example:

    EPEE_DATA_DIR=../shared/data python scripts/depth_report.py assets/pneumonia --task pneumonia
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from epee_demo.model import folder
from epee_demo.data.tasks import TASKS
from epee_demo.training.joint import (
    KEEP_EPOCH_BY, TrainConfig, auc_of, class_weights, kept_epoch, per_layer_accuracy, per_layer_auc,
)

PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def pixel_features(inputs) -> torch.Tensor:
    """Raw pixels scaled to [0, 1], one row per image."""
    return torch.from_numpy(np.stack(inputs).reshape(len(inputs), -1).astype(np.float32) / 255.0)


def fit_softmax_regression(x, y, num_classes, weight_decay, weights=None, steps=200) -> torch.nn.Linear:
    """Full-batch softmax regression (L-BFGS) with an L2 penalty on the weights."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y, weight=weights)
        loss = loss + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return linear


def pixel_probe(task_name: str) -> dict:
    """The raw-pixel softmax regression's validation-chosen L2 weight and its val/test accuracy and AUC."""
    task = TASKS[task_name]
    dataset = task.load_dataset()
    balance = {**TrainConfig().__dict__, **task.train_defaults}["balance_classes"]
    num_classes = len(dataset.label_names)
    x_train, y_train = pixel_features(dataset.train.inputs), torch.tensor(dataset.train.labels)
    weights = class_weights(dataset.train.labels, num_classes) if balance else None
    splits = {name: (pixel_features(dataset.split(name).inputs), np.asarray(dataset.split(name).labels))
              for name in ("val", "test")}
    best = None
    for weight_decay in PROBE_WEIGHT_DECAYS:
        linear = fit_softmax_regression(x_train, y_train, num_classes, weight_decay, weights)
        with torch.no_grad():
            result = {"weight_decay": weight_decay}
            for name, (x, y) in splits.items():
                probs = torch.softmax(linear(x), dim=-1).numpy()
                result[f"{name}_accuracy"] = float((probs.argmax(1) == y).mean())
                result[f"{name}_auc"] = auc_of(probs, y)
        if best is None or result["val_accuracy"] > best["val_accuracy"]:
            best = result
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="model folder (its cached traces and metrics are read)")
    parser.add_argument("--task", choices=sorted(TASKS), help="its task, for the pixel probe (needs EPEE_DATA_DIR)")
    args = parser.parse_args(argv)
    val = folder.read_trace(args.folder, "val")
    test = folder.read_trace(args.folder, "test")
    metrics = folder.read_metrics(args.folder)
    history = metrics.get("history", [])
    keep_by = metrics.get("train_config", {}).get("keep_epoch_by", "metric")
    kept = kept_epoch(history, keep_by) if history else None
    losses = [(record["epoch"], record["train_loss_per_layer"]) for record in (history[:1] + [kept])
              if record and "train_loss_per_layer" in record]
    agreement = (test.predictions == test.predictions[:, -1:]).mean(axis=0)
    recall = [[float((test.predictions[test.labels == c, i] == c).mean()) for c in range(len(test.label_names))]
              for i in range(test.num_layers)]
    columns = ["layer", "val acc", "test acc", "val AUC", "test AUC", "agrees with last (test)"]
    columns += [f"recall {name}" for name in test.label_names]
    columns += [f"train loss epoch {epoch}" for epoch, _ in losses]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    rows = zip(per_layer_accuracy(val), per_layer_accuracy(test), per_layer_auc(val), per_layer_auc(test), agreement)
    for i, (val_acc, test_acc, val_auc, test_auc, agree) in enumerate(rows):
        cells = [str(i + 1), f"{val_acc:.3f}", f"{test_acc:.3f}", f"{val_auc:.3f}", f"{test_auc:.3f}", f"{agree:.3f}"]
        cells += [f"{r:.3f}" for r in recall[i]] + [f"{loss[i]:.3f}" for _, loss in losses]
        print("| " + " | ".join(cells) + " |")
    first_right = test.predictions[:, 0] == test.labels
    last_right = test.predictions[:, -1] == test.labels
    print(f"\ntest: right at layer 1 and wrong at the last {int((first_right & ~last_right).sum())}, "
          f"wrong at layer 1 and right at the last {int((~first_right & last_right).sum())}, of {test.num_examples}")
    if history:
        print(f"kept epoch {kept['epoch'] if kept else '(none)'} of {len(history)} ({KEEP_EPOCH_BY[keep_by]})")
    if args.task:
        probe = pixel_probe(args.task)
        print(f"softmax regression on raw pixels (L2 {probe['weight_decay']:g}, chosen on validation): "
              f"val accuracy {probe['val_accuracy']:.3f}, AUC {probe['val_auc']:.3f}; "
              f"test accuracy {probe['test_accuracy']:.3f}, AUC {probe['test_auc']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
