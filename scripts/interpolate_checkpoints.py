"""Interpolate two checkpoints of one task and spec, tensor by tensor, and write the model folder.

Weight-space ensembling as in WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot
models", arXiv:2109.01903), here between two points of one fine-tuning path: ``(1 - alpha) * FROM + alpha * TO`` for every stored tensor (LoRA factors,
LayerNorms, exit heads), where ``TO`` was continued from ``FROM`` (``epee-demo train --start-from``),
so the two lie on one fine-tuning path. ``--task`` names the task (a folder's metrics.json names only its
dataset, which several tasks can share), and its dataset must be the one ``TO`` was trained on.
The folder gets ``TO``'s config.json: the head edits ``FROM`` records (a class's logit offset, the
exits' temperatures, written into its exit heads) describe ``FROM``'s heads, not the mix, so a script
that makes such an edit is run again on the mix. It also gets the val/test traces on the split ``TO``
was trained on, ``metrics.json`` (``train_config.weight_interpolation`` names both ends; the task's
metric per exit where it has one) and the model card. Example (the shipped model and its
continuation on real prose with distant labels):

    EPEE_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python scripts/interpolate_checkpoints.py \\
        assets/organ-system /tmp/rpA --task organ-system --alpha 0.5 --out /tmp/mix50
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from epee_demo.data.tasks import TASKS, preprocessor_for
from epee_demo.model import folder as model_folder
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.training.joint import dataset_options_of, model_card, task_metric_figures, trace_figures
from epee_demo.training.head_edit import is_head_edit_record


def interpolate(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], alpha: float) -> dict:
    """``(1 - alpha) * first + alpha * second`` per tensor, in float32, stored as fp16 like every checkpoint."""
    if first.keys() != second.keys() or any(first[k].shape != second[k].shape for k in first):
        raise SystemExit("the two checkpoints do not hold the same tensors: they must share one spec")
    return {k: ((1 - alpha) * first[k].float() + alpha * second[k].float()).half().contiguous() for k in first}


def _is_record(key: str) -> bool:
    """A config.json extra that records the data's licence or an edit of the exit heads, not the architecture."""
    return key == "license" or is_head_edit_record(key)


def _architecture(spec):
    return replace(spec, extra={k: v for k, v in spec.extra.items() if not _is_record(k)})


def check_trained_on(dataset_name: str, end_metrics: dict, task_name: str) -> None:
    """Refuse a task whose dataset is not the one the continued checkpoint was trained on."""
    if dataset_name != end_metrics.get("dataset"):
        raise SystemExit(f"--task {task_name} reads the dataset {dataset_name!r}, but the continued checkpoint was "
                         f"trained on {end_metrics.get('dataset')!r}")


def write_folder(start: Path, end: Path, alpha: float, out: Path, task_name: str,
                 names: tuple[str, str] | None = None) -> dict:
    """Write the interpolated checkpoint, its traces, metrics and card into ``out``; returns the metrics."""
    spec, other = model_folder.read_spec(start), model_folder.read_spec(end)
    if _architecture(other) != _architecture(spec):
        raise SystemExit(f"{start} and {end} have different specs (config.json)")
    if license := other.extra.get("license") or spec.extra.get("license"):  # trained on either run's texts
        other.extra["license"] = license
    spec = other
    end_metrics = model_folder.read_metrics(end)
    task = TASKS[task_name]
    options = dataset_options_of(end_metrics)  # the split "end" was trained on
    dataset = task.load_dataset(**options)
    check_trained_on(dataset.name, end_metrics, task_name)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    model_folder.write_spec(spec, out)
    tensors = interpolate(load_file(str(model_folder.weights_path(start))),
                          load_file(str(model_folder.weights_path(end))), alpha)
    save_file(tensors, str(model_folder.weights_path(out)))
    model, spec = model_folder.load_checkpoint(out, "cpu")
    classifier = MultiExitClassifier(model, spec, preprocessor_for(spec))
    traces = {}
    for split in model_folder.SPLITS:
        data = dataset.split(split)
        traces[split] = classifier.trace(data.inputs, data.labels)
        model_folder.write_trace(traces[split], out, split)
    names = names or (str(start), str(end))
    ends = {key: {"folder": name, "train_config": model_folder.read_metrics(folder).get("train_config")}
            for key, name, folder in (("from", names[0], start), ("to", names[1], end))}
    metrics = {
        "model": spec.title, "dataset": dataset.name,
        "split_sizes": {"train": ends["to"]["train_config"].get("max_train_examples") or len(dataset.train),
                        "val": len(dataset.val), "test": len(dataset.test)},
        **trace_figures(traces),
        "train_config": {"weight_interpolation": {"alpha": alpha, "formula": "(1 - alpha) * from + alpha * to, "
                                                  "every stored tensor", **ends},
                         **({"dataset_options": options} if options else {})},  # read by scripts that edit heads
    }
    if end_metrics.get("metric"):
        metrics.update(task_metric_figures(traces, end_metrics["metric"]))
    model_folder.write_metrics(metrics, out)
    model_folder.write_card(spec, model_card(spec, dataset, metrics, task.card_notes), out, metrics)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", type=Path, help="the checkpoint folder training continued from")
    parser.add_argument("end", type=Path, help="the continued checkpoint folder")
    parser.add_argument("--task", required=True, choices=sorted(TASKS), help="the task both were trained for")
    parser.add_argument("--alpha", type=float, required=True, help="weight of the continued checkpoint, 0 to 1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--names", nargs=2, metavar=("START", "END"),
                        help="how metrics.json and the card name the two checkpoints (default: their folders)")
    args = parser.parse_args()
    if not 0 <= args.alpha <= 1:
        parser.error("--alpha must lie in [0, 1]")
    torch.set_num_threads(1)
    metrics = write_folder(args.start, args.end, args.alpha, args.out, args.task, args.names)
    print(f"{args.out}: val {' '.join(f'{a:.3f}' for a in metrics['val_accuracy_per_layer'])} | test "
          f"{' '.join(f'{a:.3f}' for a in metrics['test_accuracy_per_layer'])} | test EPEE "
          f"{metrics['test_epee_default']['accuracy']:.3f} ({metrics['test_epee_default']['speedup']:.2f}x)")


if __name__ == "__main__":
    main()
