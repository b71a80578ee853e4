"""Joint training of every exit (loss = sum_i i * CE_i / sum_i i) and the files a run leaves.

A run writes a model folder (``epee_demo.model.folder``): the config and trained weights, the
cached traces of the validation and test splits, the metrics and the model card.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from peft.functional import set_requires_grad
from safetensors.torch import load_file
from tqdm.auto import tqdm

from epee_demo.model import folder as model_folder
from epee_demo.rules import catalogue
from epee_demo.analysis import task_metrics
from epee_demo.data import LabelledDataset
from epee_demo.model.multi_exit import (
    LORA_ADAPTER, MultiExitClassifier, MultiExitModel, ModelSpec, build_model, default_device, depth_weighted,
    param_name, per_exit_losses,
)
from epee_demo.data.preprocess import TextPreprocessor
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.exit_temperature import RECORD_KEY as TEMPERATURE_KEY, temperature_markdown


@dataclass
class TrainConfig:
    """Optimisation settings of one joint training run."""

    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    balance_classes: bool = True
    seed: int = 13
    max_train_examples: int | None = None
    label_smoothing: float = 0.0  # of every exit's cross-entropy
    start_from: str | None = None  # the checkpoint folder training continued from, if any
    backbone_from: str | None = None  # the model folder (of any task) whose backbone the fresh heads start on
    dataset_options: dict = field(default_factory=dict)  # options the task's dataset loader was given
    keep_epoch_by: str = "metric"  # which epoch is kept: one of KEEP_EPOCH_BY


WEIGHT_AVERAGE = "weight_average"
KEEP_EPOCH_BY = {
    "metric": "the best last-exit validation metric",
    "metric_and_auc": ("the best mean of the last exit's validation metric and validation AUC (auc_of: "
                       "macro one-vs-rest with more than two classes)"),
    WEIGHT_AVERAGE: ("none: the weights kept are the mean of the weights after each of the last quarter of the "
                     "epochs (a tail average of the decaying schedule, after the stochastic weight averaging of "
                     "Izmailov et al., UAI 2018, which holds the learning rate up while it averages)"),
}


def averaged_epochs(epochs: int) -> int:
    """How many of the last epochs ``keep_epoch_by="weight_average"`` averages: a quarter, at least one."""
    return max(1, math.ceil(epochs / 4))


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and torch seeds."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit_vocabulary(spec: ModelSpec, texts) -> ModelSpec:
    """For a text model trained from scratch on a reused tokenizer (``preprocess["vocabulary_min_count"]``):
    the spec with ``preprocess["vocabulary"]``, the tokenizer's special tokens and every token seen at
    least that many times in ``texts`` (the training split), in the tokenizer's id order, and the config's
    ``vocab_size`` set to its length. Any other spec is returned unchanged."""
    min_count = spec.preprocess.get("vocabulary_min_count")
    if min_count is None or not isinstance(spec.base, dict):
        return spec
    tokenizer = TextPreprocessor.for_base(spec.preprocess["tokenizer"], spec.preprocess["max_length"]).tokenizer
    counts = Counter(token for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"] for token in ids)
    keep = set(tokenizer.all_special_ids) | {token for token, count in counts.items() if count >= min_count}
    vocabulary = tokenizer.convert_ids_to_tokens(sorted(keep))
    return replace(spec, base={**spec.base, "vocab_size": len(vocabulary)},
                   preprocess={**spec.preprocess, "vocabulary": vocabulary})


def mark_trainable(model: MultiExitModel, spec: ModelSpec) -> int:
    """Choose what trains: with LoRA, peft's adapters, the LayerNorms and the heads; else everything.

    Returns the number of trainable parameters.
    """
    for name, param in model.named_parameters():
        param.requires_grad = spec.lora is None or name.startswith("heads.") or "LayerNorm" in name
    if spec.lora is not None:
        set_requires_grad(model.backbone, LORA_ADAPTER)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    """Inverse-frequency class weights (mean 1) for the cross-entropy of every exit."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = counts.sum() / (num_labels * np.maximum(counts, 1.0))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def batch_order(count: int, batch_size: int, rng: np.random.Generator, lengths=None) -> np.ndarray:
    """A shuffled example order; with ``lengths``, each run of 50 batches is sorted by length
    so that batches of texts carry little padding (the batches themselves stay shuffled)."""
    order = rng.permutation(count)
    if lengths is None:
        return order
    chunk = batch_size * 50
    batches = []
    for start in range(0, count, chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return np.concatenate(batches)


def train_joint(
    model: MultiExitModel, spec: ModelSpec, preprocessor, dataset: LabelledDataset,
    config: TrainConfig, augment=None, device=None, progress: bool = True, metric: str = "accuracy",
) -> list[dict]:
    """Train every exit together with the joint loss; returns one record per epoch.

    ``augment`` (optional) maps a list of training inputs to augmented inputs before
    preprocessing. The epoch kept is the best by ``epoch_score`` (``config.keep_epoch_by``): the
    validation ``metric`` (``analysis.task_metrics``) of the last exit, or its mean with the last
    exit's validation AUC; with ``keep_epoch_by="weight_average"`` no epoch is chosen: the model ends
    with the mean of its weights after each of the last ``averaged_epochs`` epochs (torch's
    ``AveragedModel``; the models here have no batch norm, so no statistics need recomputing).
    """
    if config.keep_epoch_by not in KEEP_EPOCH_BY:
        raise ValueError(f"keep_epoch_by must be one of {sorted(KEEP_EPOCH_BY)}, got {config.keep_epoch_by!r}")
    device = device or default_device()
    seed_everything(config.seed)
    model.to(device)
    mark_trainable(model, spec)
    train = dataset.train.first(config.max_train_examples)
    inputs, labels = list(train.inputs), list(train.labels)
    weights = class_weights(labels, spec.num_labels).to(device) if config.balance_classes else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))),
    )
    lengths = [len(x) for x in inputs] if isinstance(inputs[0], str) else None
    classifier = MultiExitClassifier(model, spec, preprocessor)
    history, best_score, best_state, averaged = [], None, None, None
    rng = np.random.default_rng(config.seed)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = batch_order(len(labels), config.batch_size, rng, lengths)
        started, running, running_per_exit = time.perf_counter(), 0.0, 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", disable=not progress)
        for step in bar:
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch_inputs = [inputs[i] for i in index]
            if augment is not None:
                batch_inputs = augment(batch_inputs, rng)
            batch = classifier.to_device(preprocessor(batch_inputs))
            target = torch.tensor([labels[i] for i in index], device=device)
            per_exit = per_exit_losses(model(batch).logits, target, weights, config.label_smoothing)
            loss = depth_weighted(per_exit)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            running_per_exit = running_per_exit + per_exit.detach().cpu().numpy()
            bar.set_postfix(loss=f"{running / (step + 1):.3f}")
        model.eval()
        val_trace = classifier.trace(dataset.val.inputs, dataset.val.labels)
        val_accuracy = per_layer_accuracy(val_trace)
        record = {
            "epoch": epoch, "train_loss": running / steps_per_epoch,
            "train_loss_per_layer": [float(x) for x in running_per_exit / steps_per_epoch],
            "val_accuracy_per_layer": val_accuracy, "seconds": time.perf_counter() - started,
        }
        if metric != "accuracy":
            record[f"val_{metric}_per_layer"] = task_metrics.per_layer(val_trace, metric)
        selected = record[f"val_{metric}_per_layer"]
        if config.keep_epoch_by == "metric_and_auc":
            record["val_last_exit_auc"] = auc_of(val_trace.probs[:, -1], val_trace.labels)
        record["epoch_score"] = epoch_score(record, metric, config.keep_epoch_by)
        history.append(record)
        if progress:
            print(f"epoch {epoch}: loss {record['train_loss']:.4f}, val {metric} per layer "
                  + " ".join(f"{a:.3f}" for a in selected) + f", kept by {record['epoch_score']:.4f}", flush=True)
        if config.keep_epoch_by == WEIGHT_AVERAGE:
            if epoch > config.epochs - averaged_epochs(config.epochs):
                if averaged is None:
                    averaged = torch.optim.swa_utils.AveragedModel(model)
                averaged.update_parameters(model)
        elif best_state is None or record["epoch_score"] > best_score:
            best_score = record["epoch_score"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(averaged.module.state_dict() if averaged is not None else best_state)
    model.eval()
    return history


def epoch_score(record: dict, metric: str, keep_epoch_by: str) -> float:
    """What an epoch's ``record`` is kept by: its last exit's validation ``metric``, or with
    ``keep_epoch_by="metric_and_auc"`` the mean of that and ``record["val_last_exit_auc"]`` (the metric
    alone where the AUC is undefined: a validation split of one class)."""
    last = record[f"val_{metric}_per_layer"][-1]
    if keep_epoch_by != "metric_and_auc" or math.isnan(record["val_last_exit_auc"]):
        return last
    return (last + record["val_last_exit_auc"]) / 2


def kept_epoch(history: list[dict], keep_epoch_by: str = "metric") -> dict | None:
    """The record of the epoch ``train_joint`` kept (the first best ``epoch_score``; a history written
    before the score was recorded: the first best last-exit validation accuracy); None for a run that
    kept the mean of its last epochs' weights (``keep_epoch_by="weight_average"``)."""
    if keep_epoch_by == WEIGHT_AVERAGE:
        return None
    return max(history, key=lambda r: r.get("epoch_score", r["val_accuracy_per_layer"][-1]))


def start_from_checkpoint(model: MultiExitModel, folder: Path, heads: bool = True) -> int:
    """Load a trained checkpoint's parameters (adapters unmerged, LayerNorms, heads) into a fresh
    model of the same spec, so training continues from it; returns how many tensors were loaded.
    With ``heads=False`` every parameter but the exit heads' is loaded (the backbone of a model of
    another task), and the heads stay as initialised; ``load_initial_weights`` first checks that its
    architecture is the model's. Raises ``ValueError`` for a checkpoint of another depth (with heads:
    another number of exit heads), of other shapes, or with tensors the model lacks."""
    tensors = {param_name(k): v.float() for k, v in load_file(str(model_folder.weights_path(folder))).items()}
    if heads:
        exits = len({key.split(".")[1] for key in tensors if key.startswith("heads.")})
        if exits != len(model.heads):
            raise ValueError(f"{folder} has {exits} exits and this model {len(model.heads)}: a checkpoint of "
                             f"another depth does not fit")
    else:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("heads.")}
    own = model.state_dict()
    if wrong := [k for k, v in tensors.items() if k in own and own[k].shape != v.shape]:
        raise ValueError(f"{folder} does not fit this model (other shapes: {wrong[:3]})")
    result = model.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{folder} does not fit this model (unexpected {result.unexpected_keys[:3]})")
    return len(tensors)


def load_initial_weights(model: MultiExitModel, spec: ModelSpec, config: TrainConfig) -> str | None:
    """Start ``model`` (built from ``spec``) from ``config.start_from`` (the whole checkpoint) or
    ``config.backbone_from`` (its backbone, fresh heads), if either is set; returns a line saying what
    was loaded, or None. Raises ``ValueError`` for both set, a backbone of another architecture, input
    or adapters (its ``base``, ``preprocess`` or ``lora`` differs from ``spec``'s: a from-scratch text
    model, with its own task's vocabulary, never fits another task), or a folder that does not fit
    (``start_from_checkpoint``)."""
    if config.start_from and config.backbone_from:
        raise ValueError("start_from and backbone_from exclude each other: continue a model or start on a backbone")
    if config.start_from:
        loaded = start_from_checkpoint(model, Path(config.start_from))
        return f"continuing from {config.start_from} ({loaded} tensors)"
    if config.backbone_from:
        source = model_folder.read_spec(Path(config.backbone_from))
        if (source.base, source.preprocess, source.lora) != (spec.base, spec.preprocess, spec.lora):
            raise ValueError(f"{config.backbone_from} is another architecture, reads other inputs or has other "
                             f"adapters (base {source.base}, preprocess {source.preprocess}, lora {source.lora}): "
                             f"its backbone does not fit")
        loaded = start_from_checkpoint(model, Path(config.backbone_from), heads=False)
        return f"starting on the backbone of {config.backbone_from} ({loaded} tensors; fresh exit heads)"
    return None


def train_model(spec: ModelSpec, dataset: LabelledDataset, config: TrainConfig, augment=None,
                metric: str = "accuracy", progress: bool = True) -> tuple[MultiExitClassifier, list[dict]]:
    """One run of ``epee-demo train`` from a spec: fit a from-scratch vocabulary on the training texts, seed,
    build, start from ``config``'s starting point (``load_initial_weights``, whose line is printed) and
    ``train_joint``; returns the trained classifier and the epochs' history. Raises ``ValueError``, before
    any training, for a starting point that does not fit."""
    from epee_demo.data.tasks import preprocessor_for

    spec = fit_vocabulary(spec, dataset.train.first(config.max_train_examples).inputs)
    seed_everything(config.seed)  # the fresh heads and from-scratch weights too, so a run repeats
    model = build_model(spec)
    if loaded := load_initial_weights(model, spec, config):
        print(loaded, flush=True)
    preprocessor = preprocessor_for(spec)
    history = train_joint(model, spec, preprocessor, dataset, config, augment=augment, progress=progress, metric=metric)
    return MultiExitClassifier(model, spec, preprocessor), history


def per_layer_accuracy(trace: ExitTrace) -> list[float]:
    """Accuracy of every exit, a list of L floats."""
    return [float(x) for x in (trace.predictions == trace.labels[:, None]).mean(axis=0)]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` [N] for the boolean ``positive`` [N] (the
    Mann-Whitney statistic, ties counted half); NaN when one of the two groups is empty."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based, ties share their mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_of(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of one exit's probabilities [N, C], as MedMNIST v2 computes it: with two classes,
    of the second class's probability; with more, one-vs-rest per class, averaged (macro)."""
    if probs.shape[1] == 2:
        return roc_auc(probs[:, 1], labels == 1)
    return float(np.nanmean([roc_auc(probs[:, c], labels == c) for c in range(probs.shape[1])]))


def per_layer_auc(trace: ExitTrace) -> list[float]:
    """ROC AUC of every exit (``auc_of``), a list of L floats."""
    return [auc_of(trace.probs[:, i], trace.labels) for i in range(trace.num_layers)]


def rule_summary(trace: ExitTrace, rule: str, **params) -> dict:
    """Accuracy, average exit layer and ideal speed-up of one rule on a labelled trace."""
    exits, answers = catalogue.exit_answers(trace.probs, rule, scores=trace.scores_for(rule), **params)
    predictions = answers.argmax(axis=-1)
    average_exit = float(exits.mean())
    return {
        "rule": rule, "params": params,
        "accuracy": float((predictions == trace.labels).mean()),
        "average_exit_layer": average_exit,
        "speedup": trace.num_layers / average_exit,
    }


def evaluate_and_write(
    classifier: MultiExitClassifier, dataset: LabelledDataset, folder: Path,
    config: TrainConfig, history: list[dict], card_notes: str = "",
) -> dict:
    """Write the model folder: the checkpoint, the val/test traces, the metrics and the model card."""
    folder = Path(folder)
    model_folder.save_checkpoint(classifier.model, classifier.spec, folder)
    traces = {}
    for split in model_folder.SPLITS:
        data = dataset.split(split)
        traces[split] = classifier.trace(data.inputs, data.labels)
        model_folder.write_trace(traces[split], folder, split)
    metrics = {
        "model": classifier.spec.title,
        "dataset": dataset.name,
        "split_sizes": {"train": len(dataset.train.first(config.max_train_examples)),  # the examples used
                        "val": len(dataset.val), "test": len(dataset.test)},
        **trace_figures(traces),
        "train_config": asdict(config),
        "history": history,
    }
    model_folder.write_metrics(metrics, folder)
    model_folder.write_card(classifier.spec, model_card(classifier.spec, dataset, metrics, card_notes), folder, metrics)
    return metrics


def trace_figures(traces: dict[str, ExitTrace]) -> dict:
    """The figures of ``metrics.json`` read off the val and test traces."""
    return {
        "test_accuracy_per_layer": per_layer_accuracy(traces["test"]),
        "val_accuracy_per_layer": per_layer_accuracy(traces["val"]),
        "test_auc_per_layer": per_layer_auc(traces["test"]),
        "val_auc_per_layer": per_layer_auc(traces["val"]),
        "auc": ("ROC AUC of the second class" if len(traces["test"].label_names) == 2
                else "ROC AUC one-vs-rest, macro average"),
        "test_epee_default": rule_summary(traces["test"], "epee", **catalogue.RULES["epee"].params),
    }


def task_metric_figures(traces: dict[str, ExitTrace], metric: str) -> dict:
    """A task's headline metric per exit on val and test, and every rule at its default setting on
    test scored by accuracy and that metric, for ``metrics.json`` (merged into it by the caller)."""
    scored = tuple(dict.fromkeys(("accuracy", metric)))
    return {
        "metric": metric,
        f"test_{metric}_per_layer": task_metrics.per_layer(traces["test"], metric),
        f"val_{metric}_per_layer": task_metrics.per_layer(traces["val"], metric),
        "test_rules_at_default": task_metrics.rules_at_default(traces["test"], scored),
    }


def write_task_metric(spec: ModelSpec, dataset: LabelledDataset, folder: Path, metric: str,
                      card_notes: str = "") -> dict:
    """Add ``task_metric_figures`` of the folder's traces to its ``metrics.json`` and model card."""
    traces = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    metrics = {**model_folder.read_metrics(folder), **task_metric_figures(traces, metric)}
    model_folder.write_metrics(metrics, folder)
    model_folder.write_card(spec, model_card(spec, dataset, metrics, card_notes), folder, metrics)
    return metrics


def task_metric_markdown(metrics: dict) -> str:
    """The model card's section on the task's own metric ("" when the folder has none)."""
    metric = metrics.get("metric")
    if not metric:
        return ""
    title = task_metrics.METRICS[metric].title
    rows = "\n".join(f"| {i} | {val:.3f} | {test:.3f} |" for i, (val, test) in enumerate(
        zip(metrics[f"val_{metric}_per_layer"], metrics[f"test_{metric}_per_layer"]), start=1))
    rules = "\n".join(
        f"| {r['rule']} | {r['params']} | {r[metric]:.3f} | {r['accuracy']:.3f} | {r['average_exit_layer']:.2f} | "
        f"{r['speedup']:.2f}x |" for r in metrics["test_rules_at_default"])
    return f"""
## {title[0].upper() + title[1:]} of every exit

| layer | validation | test |
|---|---|---|
{rows}

Every exit rule at its default setting, on test ({title}, accuracy, average exit layer, ideal speed-up
L / average exit layer):

| rule | setting | {title} | accuracy | average exit layer | speed-up |
|---|---|---|---|---|---|
{rules}
"""


def refresh_trace_figures(spec: ModelSpec, dataset: LabelledDataset, folder: Path, traces: dict[str, ExitTrace],
                          card_notes: str = "") -> dict | None:
    """After the traces were rewritten: their figures in the metrics and the model card (the
    training record stays as it was). None when the folder has no metrics."""
    recorded = model_folder.read_metrics(folder)
    if not recorded:
        return None
    metrics = {**recorded, **trace_figures(traces)}
    if metrics.get("metric"):
        metrics.update(task_metric_figures(traces, metrics["metric"]))
    model_folder.write_metrics(metrics, folder)
    model_folder.write_card(spec, model_card(spec, dataset, metrics, card_notes), folder, metrics)
    return metrics


def refresh_folder_figures(folder: Path, traces: dict[str, ExitTrace], load_dataset, card_notes: str = "") -> dict | None:
    """``refresh_trace_figures`` with the folder's own spec and the dataset ``load_dataset`` builds with the
    options the folder was trained on (``dataset_options_of`` its metrics), for a script that edited a folder."""
    options = dataset_options_of(model_folder.read_metrics(folder))
    return refresh_trace_figures(model_folder.read_spec(folder), load_dataset(**options), folder, traces, card_notes)


def real_prose_section(figures: dict | None) -> str:
    """The model card's out-of-distribution section (``scripts/eval_real_prose.py --record``), or ''."""
    if not figures:
        return ""
    epee = figures["epee_default"]
    accuracy = " | ".join(f"{a:.3f}" for a in figures["accuracy_per_layer"])
    recall = ", ".join(f"{name} {value:.3f}" for name, value in figures["last_exit_recall"].items())
    return f"""
## Out-of-distribution evaluation: real prose

{figures["data"]} {figures["examples"]} abstracts, read as the page reads a note (window
{figures["max_length"]} tokens, long notes: {figures["long_notes"]}; {figures["past_window"]} abstracts are longer).

| layer | {" | ".join(str(i) for i in range(1, len(figures["accuracy_per_layer"]) + 1))} |
|---|{"---|" * len(figures["accuracy_per_layer"])}
| accuracy | {accuracy} |

EPEE at its default setting: accuracy {epee["accuracy"]:.3f}, average exit layer {epee["average_exit_layer"]:.2f}
(ideal speed-up {epee["speedup"]:.2f}x). Recall of the last exit per class: {recall}.
"""


def dataset_options_of(metrics: dict) -> dict:
    """The options the task's dataset loader was given for this model's training split (``metrics.json``)."""
    return metrics.get("train_config", {}).get("dataset_options") or {}


def train_config_lines(metrics: dict) -> str:
    """The card's lines on the backbone a run started on, a weight average over the last epochs, the options
    the training split was built with and a weight interpolation (``scripts/interpolate_checkpoints.py``);
    "" when there was none."""
    lines = ""
    config = metrics.get("train_config", {})
    if config.get("backbone_from"):
        lines += (f"\n- Started on the backbone of `{config['backbone_from']}` (every weight but the exit heads, "
                  f"which started fresh), a model trained on another task's data: see that folder's card")
    if config.get("keep_epoch_by") == WEIGHT_AVERAGE:
        epochs = config["epochs"]
        lines += (f"\n- Weights: the mean of the weights after each of epochs {epochs - averaged_epochs(epochs) + 1}-"
                  f"{epochs} of {epochs} under the decaying learning rate (a tail average, after the stochastic weight "
                  f"averaging of Izmailov et al., UAI 2018); no epoch was chosen on validation")
    options = dataset_options_of(metrics)
    if options:
        lines += "\n- Training split built with: " + ", ".join(f"`{k}={v}`" for k, v in options.items())
    mix = config.get("weight_interpolation")
    if mix:
        lines += (f"\n- Weights: {1 - mix['alpha']:.2f} x ({mix['from']['folder']}) + {mix['alpha']:.2f} x "
                  f"({mix['to']['folder']}), every stored tensor (weight-space ensembling as in WiSE-FT, Wortsman "
                  f"et al., arXiv:2109.01903); `train_config.weight_interpolation` in `metrics.json` holds both "
                  f"runs' settings")
        if dataset_options_of({"train_config": mix["to"].get("train_config") or {}}).get("real_prose_per_class"):
            from epee_demo.data.distant_prose import LICENCES, SOURCES

            lines += f"\n- The second run's training split also held real prose with distant labels: {SOURCES}. {LICENCES}"
    return lines


def model_card(spec: ModelSpec, dataset: LabelledDataset, metrics: dict, notes: str = "") -> str:
    """The Markdown of a model card (the folder module adds the Hub metadata): data source and
    licence, splits, per-layer accuracy, EPEE."""
    sizes = metrics["split_sizes"]
    rows = "\n".join(
        f"| {i} | {val:.3f} | {test:.3f} | {val_auc:.3f} | {test_auc:.3f} |"
        for i, (val, test, val_auc, test_auc) in enumerate(zip(
            metrics["val_accuracy_per_layer"], metrics["test_accuracy_per_layer"],
            metrics["val_auc_per_layer"], metrics["test_auc_per_layer"]), start=1)
    )
    epee = metrics["test_epee_default"]
    base = spec.base if isinstance(spec.base, str) else f"{spec.base.get('model_type')} trained from scratch"
    return f"""# {spec.title}

Multi-exit transformer (a classifier after every layer), trained with the joint loss
sum_i i * CE_i / sum_i i by `epee-demo train`. **Research and teaching only; not for diagnosis.**

- Input: {spec.modality}; classes ({spec.num_labels}): {", ".join(spec.label_names)}
- Backbone: `{base}`; {"LoRA rank " + str(spec.lora["rank"]) + " adapters (merged at load)" if spec.lora else "all weights trained"}
- Data: {dataset.source}
- Licence and attribution: {dataset.licence}
- Splits: train {sizes["train"]}, validation {sizes["val"]}, test {sizes["test"]}{train_config_lines(metrics)}

## Accuracy and AUC of every exit

| layer | validation accuracy | test accuracy | validation AUC | test AUC |
|---|---|---|---|---|
{rows}

AUC: {metrics["auc"]}.

EPEE at its default setting ({epee["params"]}) on test: accuracy {epee["accuracy"]:.3f},
average exit layer {epee["average_exit_layer"]:.2f} of {len(metrics["test_accuracy_per_layer"])}
(ideal speed-up {epee["speedup"]:.2f}x = L / average exit layer; saved fraction
{100 * (1 - epee["average_exit_layer"] / len(metrics["test_accuracy_per_layer"])):.1f}% = 1 - average exit layer / L).
{temperature_markdown(spec.extra.get(TEMPERATURE_KEY))}{real_prose_section(metrics.get("real_prose_dev"))}{task_metric_markdown(metrics)}{notes}
""".rstrip("\n") + "\n"
