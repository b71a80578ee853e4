"""Measured speed of real early exit against the full model (``epee-demo bench``).

For each model and each exit rule at its default setting, over the same test inputs
and in one run (warm-up first): latency at batch size 1 and throughput at larger
batch sizes, for early exit and for the full model (every layer, last head only, no
exit checks); the realized speed-up next to the ideal one (L / average exit layer);
and what the exit heads cost (every head vs the last one only). Only model compute
is timed (inputs are tokenized and on the device beforehand): ``torch.cuda.Event``
on a GPU, ``time.perf_counter`` on the CPU (``timing.stopwatch``, which the page's
per-input timing uses too). Nothing here asserts a timing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from epee_demo.rules import catalogue
from epee_demo.trace.early_exit import (
    length_order, online_rule_for, resolve_dtype, run_early_exit, run_embedding, run_full, with_dtype,
)
from epee_demo.model.folder import load_classifier
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.trace.timing import device_name, stopwatch

BATCH1_TARGET = 0.9  # realized speed-up at batch 1 should reach this fraction of the ideal
BATCHED_TARGET = 1.5  # default EPEE should beat the full model's throughput by this on a GPU
DEFAULT_BATCH_SIZES = (32, 64)


@dataclass
class ModeTiming:
    """How fast one way of running the model went over N examples.

    Latencies are per example at batch size 1, in milliseconds; ``throughput`` maps a
    batch size to examples per second.
    """

    latency_p50_ms: float
    latency_p95_ms: float
    latency_mean_ms: float
    throughput: dict[int, float]

    @classmethod
    def from_seconds(cls, per_example: np.ndarray, batched_totals: dict[int, float], count: int) -> "ModeTiming":
        ms = np.asarray(per_example) * 1000.0
        return cls(float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.mean()),
                   {b: count / total for b, total in batched_totals.items()})


@dataclass
class RuleBench:
    """One exit rule's measured early exit, against the full model on the same examples.

    ``speedup_batch1`` is the full model's mean latency over early exit's (comparable to
    ``ideal_speedup`` = L / average exit layer). ``weighted_ideal_speedup`` weights each
    example's exit layer by its own full-model time (longer inputs cost more per layer):
    the speed-up if embedding, heads and checks were free. ``speedup_batched`` maps a batch size to
    the throughput ratio. ``batched_target_met`` is None where no batched target applies
    (CPU, or a rule other than EPEE). ``accuracy`` is None without labels.
    """

    rule: str
    params: dict
    average_exit_layer: float
    ideal_speedup: float
    weighted_ideal_speedup: float
    accuracy: float | None
    timing: ModeTiming
    speedup_batch1: float
    speedup_batched: dict[int, float]
    batch1_target_met: bool
    batched_target_met: bool | None


@dataclass
class ModelBench:
    """The benchmark of one model: the full model, every head, and every rule's early exit.

    ``head_overhead_batch1`` / ``head_overhead_batched`` are the extra time of running
    every exit head instead of the last one only (0.05 = 5 % slower). ``embedding`` times the
    embedding alone, the fixed cost that early exit cannot skip; ``embedding_in_layers`` is its
    mean at batch 1 in units of one layer's mean (the full model's time less it, over L).
    """

    name: str
    device: str
    dtype: str
    num_layers: int
    num_examples: int
    batch_sizes: list[int]
    full: ModeTiming
    all_heads: ModeTiming
    embedding: ModeTiming
    embedding_in_layers: float
    head_overhead_batch1: float
    head_overhead_batched: dict[int, float]
    rules: list[RuleBench]
    skipped_rules: dict[str, str] = field(default_factory=dict)
    note: str = "model compute only: inputs preprocessed and moved to the device before timing"


def default_rule_settings(classifier: MultiExitClassifier) -> tuple[dict[str, dict], dict[str, str]]:
    """Every rule at its default setting that this classifier can run, and the skipped ones with why."""
    rules, skipped = {}, {}
    for name, spec in catalogue.RULES.items():
        if spec.score_source == "exit_scores" and name not in classifier.exit_scorers:
            skipped[name] = "no learned exit scorer shipped with this model"
        else:
            rules[name] = dict(spec.params)
    return rules, skipped


def bench_classifier(
    classifier: MultiExitClassifier, inputs: Sequence, labels: Sequence[int] | None = None, *,
    name: str = "", rules: dict[str, dict] | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, warmup: int = 3,
) -> ModelBench:
    """Time the full model, every head, and early exit under each rule on the same inputs.

    ``rules`` maps a rule name to its parameters (default: every rule the classifier can
    run, at its default setting). Batch-1 runs interleave the modes example by example,
    and batched runs batch by batch, so background load falls on all of them alike.
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("the benchmark needs at least one input")
    skipped = {}
    if rules is None:
        rules, skipped = default_rule_settings(classifier)
    model, device = classifier.model, classifier.device
    timed = stopwatch(device)
    online = {rule: online_rule_for(classifier, rule, **params) for rule, params in rules.items()}
    modes = {
        "full": lambda batch: run_full(model, batch),
        "all_heads": lambda batch: run_full(model, batch, all_heads=True),
        "embedding": lambda batch: run_embedding(model, batch),
        **{rule: (lambda batch, r=r: run_early_exit(model, batch, r)) for rule, r in online.items()},
    }
    singles = [classifier.to_device(classifier.preprocessor([x])) for x in inputs]
    order = length_order(inputs)
    batched = {
        b: [classifier.to_device(classifier.preprocessor([inputs[i] for i in order[s:s + b]]))
            for s in range(0, len(inputs), b)]
        for b in batch_sizes
    }
    for batch in singles[:warmup] + [batches[0] for batches in batched.values()]:
        for run in modes.values():
            run(batch)
    latency = {mode: np.zeros(len(inputs)) for mode in modes}
    exits = {rule: np.zeros(len(inputs), dtype=np.int64) for rule in online}
    predictions = {rule: np.zeros(len(inputs), dtype=np.int64) for rule in online}
    for index, batch in enumerate(singles):
        for mode, run in modes.items():
            outputs = []
            latency[mode][index] = timed(lambda: outputs.append(run(batch)))
            if mode in online:
                layers, probs = outputs[0]
                exits[mode][index], predictions[mode][index] = layers[0], probs[0].argmax()
    totals = {mode: {b: 0.0 for b in batch_sizes} for mode in modes}
    for b, batches in batched.items():
        for batch in batches:
            for mode, run in modes.items():
                totals[mode][b] += timed(lambda: run(batch))
    timing = {mode: ModeTiming.from_seconds(latency[mode], totals[mode], len(inputs)) for mode in modes}
    full = timing["full"]
    on_gpu = device.type == "cuda"
    rule_results = []
    for rule, params in rules.items():
        average_exit = float(exits[rule].mean())
        ideal = classifier.num_layers / average_exit
        full_seconds = latency["full"]
        weighted_ideal = full_seconds.sum() / (full_seconds * exits[rule] / classifier.num_layers).sum()
        speedup_batch1 = full.latency_mean_ms / timing[rule].latency_mean_ms
        speedup_batched = {b: timing[rule].throughput[b] / full.throughput[b] for b in batch_sizes}
        rule_results.append(RuleBench(
            rule, params, average_exit, ideal, float(weighted_ideal),
            None if labels is None else float((predictions[rule] == np.asarray(labels)).mean()),
            timing[rule], speedup_batch1, speedup_batched,
            batch1_target_met=speedup_batch1 >= BATCH1_TARGET * ideal,
            batched_target_met=(all(s >= BATCHED_TARGET for s in speedup_batched.values())
                                if on_gpu and rule == "epee" else None),
        ))
    heads, embedding = timing["all_heads"], timing["embedding"]
    layer_ms = (full.latency_mean_ms - embedding.latency_mean_ms) / classifier.num_layers
    return ModelBench(
        name=name, device=device_name(device), dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        num_layers=classifier.num_layers, num_examples=len(inputs), batch_sizes=list(batch_sizes),
        full=full, all_heads=heads, embedding=embedding,
        embedding_in_layers=embedding.latency_mean_ms / layer_ms if layer_ms > 0 else float("inf"),
        head_overhead_batch1=heads.latency_mean_ms / full.latency_mean_ms - 1.0,
        head_overhead_batched={b: full.throughput[b] / heads.throughput[b] - 1.0 for b in batch_sizes},
        rules=rule_results, skipped_rules=skipped,
    )


def load_for_bench(folder: str | Path, device: str | None = None, dtype: str = "auto") -> MultiExitClassifier:
    """A model folder as a classifier on ``device`` in ``dtype`` (learned scorers included)."""
    classifier = load_classifier(folder, device)
    return with_dtype(classifier, resolve_dtype(dtype, classifier.device))


def sample_test_split(task, max_examples: int | None, seed: int = 0) -> tuple[list, list[int]]:
    """A seeded random sample (in split order) of at most ``max_examples`` test inputs and labels."""
    test = task.load_dataset().test
    index = np.arange(len(test))
    if max_examples is not None and max_examples < len(test):
        index = np.sort(np.random.default_rng(seed).choice(len(test), max_examples, replace=False))
    return [test.inputs[i] for i in index], [int(test.labels[i]) for i in index]


def bench_targets(folders: Sequence[str], assets: str | None = None, task: str | None = None) -> list[tuple]:
    """Which models to measure, as (name, folder, Task): the given folders (their task is
    ``task`` or the folder's name), else every shipped model in ``assets``."""
    from epee_demo.model.registry import shipped_models
    from epee_demo.data.tasks import TASKS

    if not folders:
        return [(name, shipped.folder, shipped.task)
                for name, shipped in shipped_models(Path(assets) if assets else None).items()]
    targets = []
    for folder in map(Path, folders):
        task_name = task or folder.name
        if task_name not in TASKS:
            raise ValueError(f"cannot tell which task {folder} is for; pass --task (one of {sorted(TASKS)})")
        targets.append((folder.name, folder, TASKS[task_name]))
    return targets


def _fmt_params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def format_table(results: Sequence[ModelBench]) -> str:
    """The benchmark as a plain-text table, one block per model, with the targets' pass/fail."""
    lines = []
    for result in results:
        sizes = result.batch_sizes
        lines.append(f"{result.name}: {result.num_layers} layers, {result.num_examples} test examples, "
                     f"{result.device}, {result.dtype} ({result.note})")
        head = (f"{'mode':<34}{'exit':>6}{'ideal':>7}{'w-ideal':>8}{'p50 ms':>8}{'p95 ms':>8}{'b1 x':>7}{'b1 target':>11}"
                + "".join(f"{f'ex/s@{b}':>10}{f'x@{b}':>7}" for b in sizes) + f"{'acc':>7}")
        lines += [head, "-" * len(head)]

        def row(label, exit_layer, ideal, weighted, timing, speedup, target, batched, accuracy):
            return (f"{label:<34}{exit_layer:>6.2f}{ideal:>6.2f}x{weighted:>7.2f}x{timing.latency_p50_ms:>8.2f}"
                    f"{timing.latency_p95_ms:>8.2f}{speedup:>6.2f}x{target:>11}"
                    + "".join(f"{timing.throughput[b]:>10.1f}{batched[b]:>6.2f}x" for b in sizes)
                    + (f"{accuracy:>7.3f}" if accuracy is not None else f"{'':>7}"))

        full_layers = float(result.num_layers)
        lines.append(row("full model (last head only)", full_layers, 1.0, 1.0, result.full, 1.0, "",
                         {b: 1.0 for b in sizes}, None))
        lines.append(row("full model, every exit head", full_layers, 1.0, 1.0, result.all_heads,
                         1.0 / (1.0 + result.head_overhead_batch1), "",
                         {b: 1.0 / (1.0 + result.head_overhead_batched[b]) for b in sizes}, None))
        for rule in result.rules:
            ratio = rule.speedup_batch1 / rule.ideal_speedup
            target = f"{'PASS' if rule.batch1_target_met else 'FAIL'} {ratio:.2f}"
            lines.append(row(f"{rule.rule} {_fmt_params(rule.params)}"[:33], rule.average_exit_layer,
                             rule.ideal_speedup, rule.weighted_ideal_speedup, rule.timing, rule.speedup_batch1, target,
                             rule.speedup_batched, rule.accuracy))
        lines.append(
            f"exit heads' overhead (every head vs last only): {100 * result.head_overhead_batch1:+.1f}% at batch 1, "
            + ", ".join(f"{100 * result.head_overhead_batched[b]:+.1f}% at batch {b}" for b in sizes)
        )
        lines.append(f"embedding alone (paid by every input, whatever its exit): "
                     f"{result.embedding.latency_p50_ms:.2f} ms p50 at batch 1, "
                     f"{result.embedding_in_layers:.2f} of one layer's time")
        lines.append(f"target at batch 1: realized speed-up (b1 x) >= {BATCH1_TARGET} x ideal (L / average exit); "
                     f"b1 target column: PASS/FAIL and realized/ideal. w-ideal weights each exit by that "
                     f"example's full-model time")
        epee = next((r for r in result.rules if r.rule == "epee"), None)
        if epee is not None and epee.batched_target_met is not None:
            lines.append(f"target batched (GPU, default EPEE >= {BATCHED_TARGET}x full throughput): "
                         f"{'PASS' if epee.batched_target_met else 'FAIL'}")
        else:
            lines.append(f"target batched (default EPEE >= {BATCHED_TARGET}x full throughput) applies on a GPU only")
        for rule, why in result.skipped_rules.items():
            lines.append(f"skipped {rule}: {why}")
        lines.append("")
    return "\n".join(lines)


def to_json(results: Sequence[ModelBench]) -> dict:
    """The benchmark as a JSON-ready dict: ``{"models": [...]}`` with every field of ``ModelBench``."""
    return {"models": [asdict(result) for result in results],
            "targets": {"batch1_fraction_of_ideal": BATCH1_TARGET, "batched_epee_gpu_speedup": BATCHED_TARGET}}


def write_json(results: Sequence[ModelBench], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(results), indent=2) + "\n")
    return path
