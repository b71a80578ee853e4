"""What the per-layer views show for one example under the current rule settings.

Pure NumPy over a one-example ``ExitTrace``: the page calls ``analyze_example`` on
every slider move (no model call) and hands the result to the figure functions.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from epee_demo.rules import catalogue
from epee_demo.trace.exit_trace import ExitTrace


@dataclass
class RuleExit:
    """Where one rule stops on the example and what it answers there."""

    rule: str
    params: dict
    exit_layer: int
    label: str
    probability: float


@dataclass
class ExampleAnalysis:
    """Per-layer view of one example (L layers).

    Attributes:
        label_names: C class names.
        probs: float [L, C], every exit's class probabilities (what each exit believes).
        predicted: predicted class name at each layer, L strings.
        top_probability: float [L], probability of the predicted class.
        entropy: float [L], normalized entropy Hn.
        patience_counter: int [L], the PABEE counter.
        rule_counter: [L], the value the selected rule compares at each layer
            (``RuleSpec.shown``): PABEE's counter for epee and patience, the confident-layer
            run for pcee, the low-divergence run for fpabee, the compared score for calm,
            consistentee and jei (a_l for JEI-DNN); None for rules that compare nothing of their own.
        rule_counter_name: what ``rule_counter`` holds, for axis labels.
        selected: the selected rule's exit.
        exits: every available rule's exit at its own current setting, by rule name.
        final_label: the last layer's answer; final_probability its probability.
        gold_label: the known class name, or None.
        memorized_layer: earliest layer from which every exit predicts the gold label
            (L + 1 when the last exit is wrong), or None without a gold label.
    """

    label_names: tuple[str, ...]
    probs: np.ndarray
    predicted: list[str]
    top_probability: np.ndarray
    entropy: np.ndarray
    patience_counter: np.ndarray
    rule_counter: np.ndarray | None
    rule_counter_name: str
    selected: RuleExit
    exits: dict[str, RuleExit]
    final_label: str
    final_probability: float
    gold_label: str | None
    memorized_layer: int | None = None

    @property
    def num_layers(self) -> int:
        return len(self.predicted)

    @property
    def overthinks(self) -> bool:
        """Right at some layer but wrong at the last (needs a gold label)."""
        if self.gold_label is None:
            return False
        return self.gold_label in self.predicted and self.final_label != self.gold_label


RUNS_KEPT = 4096  # rule runs kept (by trace, rule and setting): a slider move reruns only the rule it sets
_runs: OrderedDict[tuple, tuple[weakref.ref, dict]] = OrderedDict()
_runs_lock = threading.Lock()


def _run(trace: ExitTrace, rule: str, params: dict) -> dict:
    """``catalogue.run_rule`` of one rule over ``trace`` (its arrays read-only), kept while ``trace`` lives
    (the page's session state holds it) among the last ``RUNS_KEPT`` runs."""
    key = (id(trace), rule, tuple(sorted(params.items())))
    with _runs_lock:
        kept = _runs.get(key)
        if kept is not None and kept[0]() is trace:
            _runs.move_to_end(key)
            return kept[1]
    run = catalogue.run_rule(trace.probs, rule, scores=trace.scores_for(rule), **params)
    for array in run.values():
        array.flags.writeable = False
    with _runs_lock:
        _runs[key] = (weakref.ref(trace), run)
        while len(_runs) > RUNS_KEPT:
            _runs.popitem(last=False)
    return run


def run_rules(trace: ExitTrace, params_by_rule: dict[str, dict]) -> dict[str, dict]:
    """Each rule run over a one-example trace: its exits, answered distributions and the value it
    compares per layer (``catalogue.run_rule``; read-only arrays), by rule name. A rule already run on
    this trace at this setting is not run again: a slider move changes one rule's setting, and every
    view shows every rule."""
    return {rule: _run(trace, rule, params) for rule, params in params_by_rule.items()}


def rule_exit(trace: ExitTrace, rule: str, params: dict, run: dict) -> RuleExit:
    """Exit layer and answer of one rule's ``run`` on a one-example trace (PCEE answers with its run's mean)."""
    answer = run["probs"][0]
    return RuleExit(rule, dict(params), int(run["exits"][0]), trace.label_names[int(answer.argmax())],
                    float(answer.max()))


def analyze_example(trace: ExitTrace, settings: dict[str, dict], selected_rule: str) -> ExampleAnalysis:
    """The per-layer view of a one-example trace.

    ``settings`` maps rule names to their current parameters (missing rules or
    parameters take the defaults in ``catalogue.RULES``).
    """
    if trace.num_examples != 1:
        raise ValueError(f"analyze_example takes a one-example trace; got {trace.num_examples} examples")
    full = {
        rule: {**catalogue.RULES[rule].params, **settings.get(rule, {})}
        for rule in trace.available_rules()
    }
    if selected_rule not in full:
        raise ValueError(f"rule {selected_rule!r} is not available for this model")
    probs = trace.probs[0]
    predictions = probs.argmax(axis=-1)
    runs = run_rules(trace, full)
    exits = {rule: rule_exit(trace, rule, full[rule], run) for rule, run in runs.items()}
    counter = runs[selected_rule]["shown"] if catalogue.RULES[selected_rule].shown else None
    gold = int(trace.labels[0])
    return ExampleAnalysis(
        label_names=trace.label_names,
        probs=probs,
        predicted=[trace.label_names[int(c)] for c in predictions],
        top_probability=probs.max(axis=-1),
        entropy=catalogue.normalized_entropy(probs),
        patience_counter=runs["patience"]["shown"][0].astype(np.int64),
        rule_counter=None if counter is None else counter[0],
        rule_counter_name=catalogue.RULES[selected_rule].shown,
        selected=exits[selected_rule],
        exits=exits,
        final_label=trace.label_names[int(predictions[-1])],
        final_probability=float(probs[-1].max()),
        gold_label=trace.label_names[gold] if gold >= 0 else None,
        memorized_layer=int(catalogue.memorized_layers(trace.probs, trace.labels)[0]) if gold >= 0 else None,
    )
