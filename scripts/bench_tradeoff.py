"""Time the trade-off views: what is computed once per model, and what one slider move recomputes.

On a synthetic trace (default 2,500 examples, 6 layers, 12 classes, scores for every learned
rule) or on a saved one (``--trace assets/organ-system/trace_test.npz``):

    python scripts/bench_tradeoff.py
    python scripts/bench_tradeoff.py --trace assets/organ-system/trace_test.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from epee_demo.rules import catalogue
from epee_demo.analysis import whole_split
from epee_demo.figures.tradeoff import (
    class_accuracy_figure, confusion_figure, exit_histogram_figure, overthinking_figure, tradeoff_figure,
)
from epee_demo.trace.exit_trace import ExitTrace


def synthetic_trace(n: int, num_layers: int, num_classes: int, seed: int = 0) -> ExitTrace:
    """Deeper exits are more often right and more confident; random learned-exit scores."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_layers, num_classes))
    strength = np.linspace(0.5, 5.0, num_layers)[None, :] * rng.uniform(0.3, 1.5, (n, 1))
    logits[np.arange(n)[:, None], np.arange(num_layers)[None, :], labels[:, None]] += strength
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    cosine = np.clip(np.linspace(0.7, 0.99, num_layers)[None, :] + rng.normal(0, 0.05, (n, num_layers)), -1, 1)
    cosine[:, 0] = np.nan
    scores = {rule: rng.uniform(size=(n, num_layers)) for rule in ("consistentee", "jei")}
    return ExitTrace(probs, tuple(f"class {i}" for i in range(num_classes)), labels, cosine, scores)


def milliseconds(function, repeats: int) -> float:
    """Median wall time of ``function()`` in ms over ``repeats`` runs (after one warm-up)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", help="a saved trace (.npz); default: a synthetic one")
    parser.add_argument("--examples", type=int, default=2500)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    trace = (ExitTrace.load(args.trace) if args.trace
             else synthetic_trace(args.examples, args.layers, args.classes))
    n, num_layers, num_classes = trace.probs.shape
    print(f"trace: {n} examples, {num_layers} layers, {num_classes} classes; rules {trace.available_rules()}")

    start = time.perf_counter()
    prepared = whole_split.prepare(trace)
    prepare_ms = 1e3 * (time.perf_counter() - start)
    start = time.perf_counter()
    frontiers = whole_split.all_frontiers(prepared)
    frontiers_ms = 1e3 * (time.perf_counter() - start)
    start = time.perf_counter()
    overthinking_figure(whole_split.overthinking(prepared))
    overthinking_ms = 1e3 * (time.perf_counter() - start)
    settings = sum(len(f.params) for f in frontiers.values())
    print(f"once per model: prepare {prepare_ms:.0f} ms, all frontiers ({settings} settings) {frontiers_ms:.0f} ms, "
          f"overthinking + figure {overthinking_ms:.0f} ms")

    def views(rule):
        return lambda: whole_split.evaluate_setting(prepared, rule, **catalogue.RULES[rule].params)

    def views_and_figures(rule):
        def run():
            view = whole_split.evaluate_setting(prepared, rule, **catalogue.RULES[rule].params)
            tradeoff_figure(frontiers, view.point)
            exit_histogram_figure(view.exit_counts, view.oracle_counts, rule)
            class_accuracy_figure(view.class_accuracy, rule)
            confusion_figure(view.confusion, trace.label_names)
        return run

    print(f"\nper slider move (median of {args.repeats}), ms:\n")
    print("| rule | views | views + 4 figures |\n|---|---|---|")
    worst = 0.0
    for rule in prepared.rules:
        compute = milliseconds(views(rule), args.repeats)
        total = milliseconds(views_and_figures(rule), args.repeats)
        worst = max(worst, total)
        print(f"| {rule} | {compute:.2f} | {total:.1f} |")
    print(f"\nslowest full recompute (views + figures): {worst:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
