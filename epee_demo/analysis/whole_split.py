"""Speed-accuracy trade-off of the exit rules over a cached ``ExitTrace``: pure NumPy.

What a rule setting costs and buys on a whole split (``operating_point``,
``evaluate_setting``), every setting of a rule and its Pareto frontier (``frontier``),
where examples exit and what they answer (``exit_histogram``, ``accuracy_per_class``,
``confusion_against_full``), overthinking (``overthinking``), thresholds chosen on the
validation split with a finite-sample guarantee (``calibrate``), the per-rule table of
the fastest setting that loses at most one point of the task metric (``tradeoff_rows``,
``tradeoff_markdown``) and CSV exports.

Speed-up is the ideal one, counted in layers: ``L / average exit layer`` (a model that
runs ``L`` layers on every example has speed-up 1); ``saved_fraction`` is
``1 - average exit layer / L``, the share of layer computations skipped (the form the
EPEE, PABEE and ConsistentEE code report).

Quality is scored by the task's own metric (``prepare(trace, metric)``, a name in
``analysis.task_metrics.METRICS``: accuracy, micro-F1 over the positive classes, macro-F1),
vectorized over a grid's settings; accuracy is kept beside it.

Every function takes an ``ExitTrace`` or its ``prepare``d form. ``prepare`` computes
once what the rules read (normalized entropy, PABEE counters, divergences, scores);
hold the prepared trace when evaluating many settings (a slider). Rules are evaluated by
the catalogue's own steps (``catalogue.LayerwiseRule``), fed these prepared arrays, with a
grid's settings on a leading axis: there is no second implementation of any rule here.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epee_demo.rules import catalogue
from epee_demo.errors import InputError
from epee_demo.analysis.task_metrics import METRICS
from epee_demo.trace.exit_trace import ExitTrace


# The frontier grids live in the rule catalogue (``catalogue.RULES``); these are its threshold grids.
ENTROPY_TAUS = catalogue.ENTROPY_TAUS
PROBABILITY_THRESHOLDS = catalogue.PROBABILITY_THRESHOLDS
DIVERGENCE_TAUS = catalogue.DIVERGENCE_TAUS

_GRID_CHUNK = 4_000_000  # values per batch when evaluating many settings at once


# --------------------------------------------------------------------------- preparing


@dataclass
class PreparedTrace:
    """An ``ExitTrace`` with what the rules and the views read, computed once.

    Attributes:
        trace: the trace itself.
        probs: float64 [N, L, C], the trace's distributions (renormalized).
        predictions: int [N, L], predicted class at every layer.
        full_predictions: int [N], the last layer's prediction (the full model's).
        correct: bool [N, L], prediction equals gold (all False without labels).
        entropy: float64 [N, L], normalized entropy Hn.
        max_prob: float64 [N, L], probability of the predicted class.
        patience: int [N, L], PABEE counter.
        divergences: measure -> float64 [N, L], divergence from the previous layer (+inf at layer 1).
        scores: rule -> float64 [N, L], the score array of each available score-based rule.
        oracle_exits: int [N], earliest layer from which the prediction no longer changes.
        rules: the rules this trace can evaluate (``ExitTrace.available_rules``).
        metric: the task metric every operating point and frontier is scored by (``METRICS``).
    """

    trace: ExitTrace
    probs: np.ndarray
    predictions: np.ndarray
    full_predictions: np.ndarray
    correct: np.ndarray
    entropy: np.ndarray
    max_prob: np.ndarray
    patience: np.ndarray
    divergences: dict
    scores: dict
    oracle_exits: np.ndarray
    rules: tuple
    metric: str = "accuracy"

    @property
    def num_examples(self) -> int:
        return self.predictions.shape[0]

    @property
    def num_layers(self) -> int:
        return self.predictions.shape[1]

    @property
    def has_labels(self) -> bool:
        return self.trace.has_labels


def prepare(trace: ExitTrace | PreparedTrace, metric: str | None = None) -> PreparedTrace:
    """Compute what every rule reads, once per trace, scored by ``metric`` (default accuracy; a
    prepared trace is returned as is, or re-scored when another metric is asked for)."""
    if metric is not None and metric not in METRICS:
        raise InputError(f"Unknown metric {metric!r}. Choose one of: {', '.join(METRICS)}.")
    if isinstance(trace, PreparedTrace):
        return trace if metric in (None, trace.metric) else dataclasses.replace(trace, metric=metric)
    if trace.num_examples == 0:
        raise InputError("This trace holds no examples, so there is nothing to measure.")
    probs = trace.probs.astype(np.float64)
    probs /= probs.sum(axis=-1, keepdims=True)
    predictions = probs.argmax(axis=-1)
    rules = tuple(trace.available_rules())
    return PreparedTrace(
        trace=trace,
        probs=probs,
        predictions=predictions,
        full_predictions=predictions[:, -1],
        correct=predictions == trace.labels[:, None],
        entropy=catalogue.normalized_entropy(probs),
        max_prob=probs.max(axis=-1),
        patience=catalogue.patience_counters(probs),
        divergences={m: catalogue.layer_divergences(probs, m) for m in catalogue.DIVERGENCES},
        scores={r: trace.scores_for(r).astype(np.float64) for r in rules if catalogue.RULES[r].needs_scores},
        oracle_exits=oracle_exits(predictions),
        rules=rules,
        metric=metric or "accuracy",
    )


def oracle_exits(predictions: np.ndarray) -> np.ndarray:
    """Earliest layer from which the prediction no longer changes: int [N, L] -> int [N], 1-based.

    Exiting there or later always gives the full model's answer. (An earlier layer may give
    it too, by chance, before the prediction changes and changes back.)
    """
    predictions = np.asarray(predictions)
    same_as_last = predictions == predictions[:, -1:]
    trailing = np.cumprod(same_as_last[:, ::-1], axis=1).sum(axis=1)
    return (predictions.shape[1] - trailing + 1).astype(np.int64)


# --------------------------------------------------------------------------- exits


def _check_setting(prep: PreparedTrace, rule: str, params: dict) -> dict:
    """The rule's full parameter dict (defaults filled in), or an InputError."""
    if rule not in catalogue.RULES:
        raise InputError(f"Unknown exit rule {rule!r}. Choose one of: {', '.join(catalogue.RULES)}.")
    if rule not in prep.rules:
        raise InputError(
            f"The rule {catalogue.RULES[rule].title!r} needs learned exit scores this model does not have."
        )
    try:
        return catalogue.check_params(rule, params, prep.num_layers)
    except ValueError as err:  # the catalogue's own check, its message for the person who chose the setting
        raise InputError(str(err)) from None


def _layer_inputs(prep: PreparedTrace, rule: str):
    """What ``catalogue.LayerwiseRule.step`` reads at each layer, from the prepared arrays."""
    scores = prep.scores.get(rule)
    for i in range(prep.num_layers):
        known = {"entropy": prep.entropy[:, i], "max_prob": prep.max_prob[:, i], "prediction": prep.predictions[:, i],
                 "previous_prediction": prep.predictions[:, i - 1] if i else None,
                 **{f"divergence.{m}": d[:, i] for m, d in prep.divergences.items()}}
        yield prep.probs[:, i], None if scores is None else scores[:, i], known


def _evaluate(prep: PreparedTrace, rule: str, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Exit layers and answered classes for parameters that are scalars (-> [N]) or arrays [S] (-> [S, N]).

    Runs the catalogue's own step (``catalogue.LayerwiseRule``) with the settings on a leading axis;
    ``measure`` must be a single string.
    """
    params = {k: (v if isinstance(v, str) or np.ndim(v) == 0 else np.asarray(v)[:, None]) for k, v in p.items()}
    layerwise = catalogue.LayerwiseRule(rule, prep.num_layers, prep.num_examples, **params)
    out = catalogue.evaluate_layers(layerwise, _layer_inputs(prep, rule))
    return out["exits"], out["classes"]


# --------------------------------------------------------------------------- operating points


@dataclass(frozen=True)
class OperatingPoint:
    """One rule setting measured on a whole split.

    Attributes:
        rule, params: the rule and its full parameter dict.
        num_examples, num_layers: N and L.
        accuracy: share of examples whose exit answer is the gold class (NaN without labels).
        full_accuracy: the full model's (last layer's) accuracy (NaN without labels).
        metric: the task metric's name; score, full_score: the exit answers' and the full
            model's value of it (equal to the accuracies for an accuracy task; NaN without labels).
        agreement: share of examples whose exit answer equals the full model's.
        average_exit_layer: mean exit layer, in [1, L].
        saved_fraction: 1 - average_exit_layer / L, share of layer computations skipped.
        speedup: L / average_exit_layer (ideal, counted in layers).
    """

    rule: str
    params: dict
    num_examples: int
    num_layers: int
    accuracy: float
    full_accuracy: float
    agreement: float
    average_exit_layer: float
    saved_fraction: float
    speedup: float
    metric: str
    score: float
    full_score: float

    @property
    def metric_title(self) -> str:
        """The task metric's name for a reader: ``accuracy``, ``macro-F1`` ..."""
        return METRICS[self.metric].title

    @property
    def label(self) -> str:
        """Rule title and setting, e.g. ``EPEE (entropy or patience): tau=0.2, patience=3``."""
        return f"{catalogue.RULES[self.rule].title}: {format_params(self.params)}"


def speedup_text(speedup: float, saved_fraction: float) -> str:
    """Both forms of speed-up, labelled: the page's L / mean exit layer and the saved fraction
    1 - mean exit layer / L that the EPEE, PABEE and ConsistentEE code report."""
    return (f"speed-up **{speedup:.2f}×** (L / mean exit layer), saved fraction **{100 * saved_fraction:.1f}%** "
            "(1 − mean exit layer / L, as the EPEE, PABEE and ConsistentEE code report it)")


def format_params(params: dict | None) -> str:
    """``tau=0.2, patience=3``; ``full model`` for None."""
    if params is None:
        return "full model"
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _measure(prep: PreparedTrace, exits: np.ndarray, answers: np.ndarray) -> dict:
    """Accuracy, the task metric, agreement and exit statistics of exits and answered classes
    int [..., N], each [...]."""
    average = exits.mean(axis=-1)
    if prep.has_labels:
        labels, classes = prep.trace.labels, len(prep.trace.label_names)
        accuracy = (answers == labels).mean(axis=-1)
        score = accuracy if prep.metric == "accuracy" else METRICS[prep.metric].compute(answers, labels, classes)
    else:
        accuracy = score = np.full(average.shape, np.nan)
    return {
        "accuracy": accuracy,
        "score": score,
        "agreement": (answers == prep.full_predictions).mean(axis=-1),
        "average_exit_layer": average,
        "saved_fraction": 1.0 - average / prep.num_layers,
        "speedup": prep.num_layers / average,
    }


def _full_accuracy(prep: PreparedTrace) -> float:
    return float(prep.correct[:, -1].mean()) if prep.has_labels else math.nan


def _full_score(prep: PreparedTrace) -> float:
    """The full model's (last layer's) value of the task metric (NaN without labels)."""
    if not prep.has_labels:
        return math.nan
    return float(METRICS[prep.metric].compute(prep.full_predictions, prep.trace.labels, len(prep.trace.label_names)))


def _point(prep: PreparedTrace, rule: str, params: dict, measured: dict) -> OperatingPoint:
    return OperatingPoint(
        rule=rule, params=dict(params), num_examples=prep.num_examples, num_layers=prep.num_layers,
        full_accuracy=_full_accuracy(prep), metric=prep.metric, full_score=_full_score(prep),
        **{k: float(v) for k, v in measured.items()},
    )


def operating_point(trace: ExitTrace | PreparedTrace, rule: str, **params) -> OperatingPoint:
    """Accuracy, average exit layer, speed-up and agreement with the full model of one setting."""
    prep = prepare(trace)
    full = _check_setting(prep, rule, params)
    return _point(prep, rule, full, _measure(prep, *_evaluate(prep, rule, full)))


def full_model_point(trace: ExitTrace | PreparedTrace) -> OperatingPoint:
    """The full model: every example runs all L layers (the fixed rule at layer L)."""
    prep = prepare(trace)
    return operating_point(prep, "fixed", layer=prep.num_layers)


# --------------------------------------------------------------------------- grids and frontiers


def _param_values(rule: str, name: str, num_layers: int) -> list:
    grid = catalogue.RULES[rule].parameter(name).grid
    return list(range(1, num_layers + 1)) if isinstance(grid, str) and grid == "layers" else list(grid)


def parameter_grid(trace: ExitTrace | PreparedTrace, rule: str) -> list[dict]:
    """Every setting of ``rule`` the frontier scans: the product of its parameters' grids.

    Thresholds come from fixed grids (``ENTROPY_TAUS``, ``PROBABILITY_THRESHOLDS``,
    ``DIVERGENCE_TAUS``, dense near the confident end); patience and fixed layers run
    1..L; F-PABEE also runs over every divergence measure.
    """
    prep = prepare(trace)
    _check_setting(prep, rule, {})
    names = list(catalogue.RULES[rule].params)
    values = [_param_values(rule, name, prep.num_layers) for name in names]
    return [
        {n: (float(v) if isinstance(v, (float, np.floating)) else v) for n, v in zip(names, combo)}
        for combo in itertools.product(*values)
    ]


def _grid_exits(prep: PreparedTrace, rule: str, settings: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Exit layers and answered classes of many settings of one rule, int [S, N] each, in batches."""
    exits = np.empty((len(settings), prep.num_examples), dtype=np.int64)
    answers = np.empty_like(exits)
    names = list(catalogue.RULES[rule].params)
    groups: dict = {}  # settings sharing their string parameters (the divergence) run together
    for index, setting in enumerate(settings):
        groups.setdefault(tuple((n, setting[n]) for n in names if isinstance(setting[n], str)), []).append(index)
    width = prep.probs.shape[-1] if catalogue.RULES[rule].answer is not None else 1
    chunk = max(1, _GRID_CHUNK // (prep.num_examples * width))
    for shared, indices in groups.items():
        for start in range(0, len(indices), chunk):
            part = indices[start:start + chunk]
            p = {n: np.array([settings[i][n] for i in part]) for n in names if n not in dict(shared)}
            exits[part], answers[part] = _evaluate(prep, rule, {**p, **dict(shared)})
    return exits, answers


@dataclass(frozen=True)
class Frontier:
    """Every grid setting of one rule on one split, and the Pareto-optimal ones.

    Attributes:
        rule: the rule's name.
        params: S parameter dicts (the grid).
        accuracy, score, agreement, average_exit_layer, saved_fraction, speedup: float [S], as in
            ``OperatingPoint``.
        full_accuracy, full_score: the full model's accuracy and task metric on the split.
        metric: the task metric's name.
        pareto: int [P], indices of the settings no other setting beats on both the task metric
            and speed-up, by increasing speed-up (the metric strictly decreases along it).
    """

    rule: str
    params: list
    accuracy: np.ndarray
    score: np.ndarray
    agreement: np.ndarray
    average_exit_layer: np.ndarray
    saved_fraction: np.ndarray
    speedup: np.ndarray
    full_accuracy: float
    full_score: float
    metric: str
    num_examples: int
    num_layers: int
    pareto: np.ndarray

    @property
    def metric_title(self) -> str:
        return METRICS[self.metric].title

    def point(self, index: int) -> OperatingPoint:
        """The grid setting at ``index`` as an ``OperatingPoint``."""
        return OperatingPoint(
            rule=self.rule, params=dict(self.params[index]), num_examples=self.num_examples,
            num_layers=self.num_layers, full_accuracy=self.full_accuracy, metric=self.metric,
            full_score=self.full_score, score=float(self.score[index]),
            accuracy=float(self.accuracy[index]), agreement=float(self.agreement[index]),
            average_exit_layer=float(self.average_exit_layer[index]),
            saved_fraction=float(self.saved_fraction[index]), speedup=float(self.speedup[index]),
        )

    def points(self, pareto_only: bool = False) -> list[OperatingPoint]:
        indices = self.pareto if pareto_only else range(len(self.params))
        return [self.point(int(i)) for i in indices]


def pareto_indices(speedup: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (maximize both), by increasing speed-up, int [P].

    A point is kept when no other point has at least its speed-up and its quality with one
    of them strictly higher; of exact duplicates the first is kept.
    """
    speedup, quality = np.asarray(speedup, dtype=float), np.asarray(quality, dtype=float)
    order = np.lexsort((-quality, -speedup))  # fastest first; among equals, best quality first
    kept, best = [], -np.inf
    for index in order:
        if quality[index] > best:
            kept.append(index)
            best = quality[index]
    return np.array(kept[::-1], dtype=np.int64)


def frontier(trace: ExitTrace | PreparedTrace, rule: str) -> Frontier:
    """All grid settings of ``rule`` and their Pareto frontier of the task metric against speed-up.

    Without labels the frontier is taken on agreement with the full model instead.
    """
    prep = prepare(trace)
    settings = parameter_grid(prep, rule)
    measured = _measure(prep, *_grid_exits(prep, rule, settings))
    quality = measured["score"] if prep.has_labels else measured["agreement"]
    return Frontier(
        rule=rule, params=settings, full_accuracy=_full_accuracy(prep), full_score=_full_score(prep),
        metric=prep.metric, num_examples=prep.num_examples,
        num_layers=prep.num_layers, pareto=pareto_indices(measured["speedup"], quality), **measured,
    )


def all_frontiers(trace: ExitTrace | PreparedTrace) -> dict[str, Frontier]:
    """The frontier of every rule the trace can evaluate (``fixed`` holds the truncation baselines)."""
    prep = prepare(trace)
    return {rule: frontier(prep, rule) for rule in prep.rules}


def best_within_loss(frontier_: Frontier, max_loss: float = 0.01) -> int | None:
    """Index of the fastest grid setting whose task metric (accuracy, or the task's own) is at most
    ``max_loss`` below the full model's.

    Ties in speed-up go to the higher metric; None when no setting qualifies.
    """
    ok = np.flatnonzero(frontier_.score >= frontier_.full_score - max_loss - 1e-12)
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((-frontier_.score[ok], -frontier_.speedup[ok]))[0]])


# --------------------------------------------------------------------------- views of one setting


def exit_histogram(exits: np.ndarray, num_layers: int) -> np.ndarray:
    """How many examples exit at each layer: int [N] (1-based) -> int [L]."""
    return np.bincount(np.asarray(exits) - 1, minlength=num_layers).astype(np.int64)


@dataclass(frozen=True)
class ClassAccuracy:
    """Accuracy per gold class at a setting's exits and at the full model.

    Attributes:
        label_names: C class names.
        support: int [C], examples of each gold class.
        early: float [C], accuracy at the rule's exits (NaN where support is 0).
        full: float [C], accuracy of the last layer (NaN where support is 0).
    """

    label_names: tuple
    support: np.ndarray
    early: np.ndarray
    full: np.ndarray


def accuracy_per_class(trace: ExitTrace | PreparedTrace, answers: np.ndarray) -> ClassAccuracy:
    """Per-class accuracy of the answered classes (int [N]) beside the full model's."""
    prep = prepare(trace)
    if not prep.has_labels:
        raise InputError("Accuracy per class needs the gold label of every example.")
    labels, num_classes = prep.trace.labels, len(prep.trace.label_names)
    support = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        early = np.bincount(labels, weights=np.asarray(answers) == labels, minlength=num_classes) / support
        full = np.bincount(labels, weights=prep.correct[:, -1], minlength=num_classes) / support
    return ClassAccuracy(prep.trace.label_names, support.astype(np.int64), early, full)


def confusion_against_full(trace: ExitTrace | PreparedTrace, answers: np.ndarray) -> np.ndarray:
    """Counts int [C, C]: row = the full model's answer, column = the answered class (int [N])."""
    prep = prepare(trace)
    num_classes = len(prep.trace.label_names)
    cells = prep.full_predictions * num_classes + np.asarray(answers)
    return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class OracleComparison:
    """Where a rule exits relative to the oracle exit (prediction stable from there on).

    Attributes:
        earlier, same, later: how many examples exit before, at and after their oracle layer
            (before it, the answer may still differ from the full model's; after it, layers
            are spent for nothing).
        mean_difference: mean of (exit layer - oracle layer).
    """

    earlier: int
    same: int
    later: int
    mean_difference: float


def compare_with_oracle(oracle: np.ndarray, exits: np.ndarray) -> OracleComparison:
    """Count exits before, at and after the oracle layer: int [N], int [N]."""
    difference = np.asarray(exits) - np.asarray(oracle)
    return OracleComparison(
        int((difference < 0).sum()), int((difference == 0).sum()), int((difference > 0).sum()),
        float(difference.mean()),
    )


@dataclass(frozen=True)
class SettingView:
    """Everything the trade-off page shows for the current setting of one rule.

    Attributes:
        point: the setting's operating point.
        exits: int [N], exit layer per example; answers: int [N], the class answered there.
        exit_counts: int [L], examples exiting at each layer.
        oracle_counts: int [L], examples whose oracle exit is each layer.
        vs_oracle: exits compared with the oracle exits.
        confusion: int [C, C], full model's answer (rows) against the exit answer (columns).
        class_accuracy: per-class accuracy, None without labels.
    """

    point: OperatingPoint
    exits: np.ndarray
    answers: np.ndarray
    exit_counts: np.ndarray
    oracle_counts: np.ndarray
    vs_oracle: OracleComparison
    confusion: np.ndarray
    class_accuracy: ClassAccuracy | None


def evaluate_setting(trace: ExitTrace | PreparedTrace, rule: str, **params) -> SettingView:
    """All per-setting views at once (what a slider move recomputes)."""
    prep = prepare(trace)
    full = _check_setting(prep, rule, params)
    exits, answers = _evaluate(prep, rule, full)
    return SettingView(
        point=_point(prep, rule, full, _measure(prep, exits, answers)),
        exits=exits,
        answers=answers,
        exit_counts=exit_histogram(exits, prep.num_layers),
        oracle_counts=exit_histogram(prep.oracle_exits, prep.num_layers),
        vs_oracle=compare_with_oracle(prep.oracle_exits, exits),
        confusion=confusion_against_full(prep, answers),
        class_accuracy=accuracy_per_class(prep, answers) if prep.has_labels else None,
    )


# --------------------------------------------------------------------------- overthinking


@dataclass(frozen=True)
class Overthinking:
    """Where deeper layers undo right answers (needs gold labels).

    Attributes:
        right_somewhere: bool [N], right at some layer.
        destructive: bool [N], right at some layer and wrong at the last ("destructive
            overthinking": exiting earlier would have fixed it).
        right_then_wrong: int [L], examples right at layer i and wrong at some later layer.
        lost_at: int [L], examples right at layer i-1 and wrong at layer i (0 at layer 1).
        gained_at: int [L], examples wrong at layer i-1 and right at layer i (0 at layer 1).
        oracle_exits: int [N], earliest layer from which the prediction no longer changes.
    """

    right_somewhere: np.ndarray
    destructive: np.ndarray
    right_then_wrong: np.ndarray
    lost_at: np.ndarray
    gained_at: np.ndarray
    oracle_exits: np.ndarray

    @property
    def num_layers(self) -> int:
        return self.right_then_wrong.shape[0]

    @property
    def destructive_count(self) -> int:
        return int(self.destructive.sum())


def overthinking(trace: ExitTrace | PreparedTrace) -> Overthinking:
    """Destructive overthinking per example and per layer, and the oracle exits."""
    prep = prepare(trace)
    if not prep.has_labels:
        raise InputError("Overthinking is measured against gold labels, and this trace has none.")
    correct = prep.correct
    wrong_later = np.zeros_like(correct)
    # wrong_later[:, i]: wrong at some layer after i (a reversed running OR over layers > i).
    wrong_later[:, :-1] = np.logical_or.accumulate(~correct[:, :0:-1], axis=1)[:, ::-1]
    lost = np.zeros(prep.num_layers, dtype=np.int64)
    gained = np.zeros(prep.num_layers, dtype=np.int64)
    lost[1:] = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=0)
    gained[1:] = (~correct[:, :-1] & correct[:, 1:]).sum(axis=0)
    right_somewhere = correct.any(axis=1)
    return Overthinking(
        right_somewhere=right_somewhere,
        destructive=right_somewhere & ~correct[:, -1],
        right_then_wrong=(correct & wrong_later).sum(axis=0).astype(np.int64),
        lost_at=lost, gained_at=gained, oracle_exits=prep.oracle_exits,
    )


# --------------------------------------------------------------------------- calibration


def scan_path(trace: ExitTrace | PreparedTrace, rule: str, knob: str | None = None, **fixed) -> list[dict]:
    """Settings of ``rule`` from conservative (late exits) to aggressive (early exits).

    ``knob`` (default the rule's ``speed_knob``) runs over its fixed grid; the other parameters
    stay at ``fixed`` or their defaults. The order never looks at the data.
    """
    prep = prepare(trace)
    knob = knob or (catalogue.RULES[rule].speed_knob if rule in catalogue.RULES else None)
    base = _check_setting(prep, rule, {k: v for k, v in fixed.items() if k != knob})
    if knob not in base or knob == "measure":
        raise InputError(f"Cannot scan {knob!r} for {catalogue.RULES[rule].title}.")
    values = _param_values(rule, knob, prep.num_layers)
    values = values if catalogue.RULES[rule].parameter(knob).faster_when_raised else values[::-1]
    return [{**base, knob: (float(v) if isinstance(v, (float, np.floating)) else v)} for v in values]


def binomial_cdf(successes: np.ndarray, n: int, p: float) -> np.ndarray:
    """P(Binomial(n, p) <= k) for each k in ``successes`` (exact, via log-gamma)."""
    successes = np.asarray(successes, dtype=np.int64)
    if p <= 0.0:
        return np.ones(successes.shape)
    if p >= 1.0:
        return (successes >= n).astype(float)
    k = np.arange(n + 1)
    log_choose = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in k])
    pmf = np.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))
    return np.minimum(np.cumsum(pmf), 1.0)[np.clip(successes, 0, n)]


@dataclass(frozen=True)
class Calibration:
    """A rule setting chosen on the validation split for a target loss, checked on test.

    Loss of an example: 1 when its early answer differs from the full model's answer.

    Attributes:
        rule, knob: the rule and the parameter scanned (others fixed as in ``path``).
        method: ``crc`` (conformal risk control) or ``ltt`` (Learn-then-Test, fixed sequence).
        epsilon: the target risk; delta: the LTT error level (unused by CRC).
        path: K settings, conservative to aggressive.
        val_risk: float [K], empirical loss on validation along the path.
        val_statistic: float [K], CRC's adjusted risk (n/(n+1)·R̂⁺ + 1/(n+1), on the
            monotonized loss) or LTT's binomial p-value.
        chosen: index into ``path``, or -1 when no setting is certified (the full model answers).
        val, test: the chosen setting (or the full model) measured on each split.
    """

    rule: str
    knob: str
    method: str
    epsilon: float
    delta: float
    path: list
    val_risk: np.ndarray
    val_statistic: np.ndarray
    chosen: int
    val: OperatingPoint
    test: OperatingPoint | None

    @property
    def params(self) -> dict | None:
        """The chosen setting; None means the full model."""
        return None if self.chosen < 0 else self.path[self.chosen]


def calibrate(
    val: ExitTrace | PreparedTrace, rule: str, epsilon: float, *, test: ExitTrace | PreparedTrace | None = None,
    method: str = "crc", delta: float = 0.1, knob: str | None = None, **fixed,
) -> Calibration:
    """Choose the fastest setting of ``rule`` whose disagreement with the full model stays <= ``epsilon``.

    The loss is ``1[early answer != full model's answer]``, not ``1[early answer != gold]``:
    it is 0 for the full model (CRC needs the most conservative setting's loss <= epsilon), it
    needs no labels, and it bounds what early exiting costs, since accuracy(early) >=
    accuracy(full) - P(early != full). Settings run along ``scan_path`` (a fixed, data-free
    order); the other parameters of the rule stay at ``fixed`` or their defaults.

    ``crc`` (default): conformal risk control (Angelopoulos et al., 2022). The per-example
    loss is not monotone along the path (an answer can flip back), so CRC is applied to the
    monotonized loss max_{j<=k} loss(j), which is monotone and above the true loss; the
    chosen setting is the last k with (n/(n+1))·R̂⁺(k) + 1/(n+1) <= epsilon. Guarantee, for
    a test example exchangeable with the n validation examples: E[loss] <= epsilon.

    ``ltt``: Learn-then-Test (Angelopoulos et al., 2021) with fixed-sequence testing, as in
    CALM (Schuster et al., 2022): the null "risk(k) > epsilon" is tested in path order with
    the exact binomial p-value P(Bin(n, epsilon) <= n·R̂(k)), stopping at the first p > delta.
    Valid without monotonicity; guarantee: P(risk(chosen) <= epsilon) >= 1 - delta.

    With no certified setting (e.g. epsilon = 0) the full model is returned (``chosen = -1``).
    """
    if not 0.0 <= epsilon <= 1.0:
        raise InputError(f"The target loss epsilon must be between 0 and 1; got {epsilon}.")
    if method not in ("crc", "ltt"):
        raise InputError(f"Unknown calibration method {method!r}; choose 'crc' or 'ltt'.")
    if method == "ltt" and not 0.0 < delta < 1.0:
        raise InputError(f"delta must be between 0 and 1; got {delta}.")
    prep = prepare(val)
    path = scan_path(prep, rule, knob, **fixed)
    knob = knob or catalogue.RULES[rule].speed_knob
    _, answers = _grid_exits(prep, rule, path)
    losses = answers != prep.full_predictions  # bool [K, n]
    n = prep.num_examples
    risk = losses.mean(axis=1)
    if method == "crc":
        statistic = n / (n + 1) * np.logical_or.accumulate(losses, axis=0).mean(axis=1) + 1.0 / (n + 1)
        passes = statistic <= epsilon
    else:
        statistic = binomial_cdf(losses.sum(axis=1), n, epsilon)
        passes = statistic <= delta
    # Scan from conservative to aggressive and stop at the first failure.
    chosen = int(np.argmin(passes)) - 1 if not passes.all() else len(path) - 1
    test_prep = prepare(test) if test is not None else None

    def measured(p: PreparedTrace) -> OperatingPoint:
        return full_model_point(p) if chosen < 0 else operating_point(p, rule, **path[chosen])

    return Calibration(
        rule=rule, knob=knob, method=method, epsilon=float(epsilon), delta=float(delta),
        path=path, val_risk=risk, val_statistic=statistic, chosen=chosen, val=measured(prep),
        test=measured(test_prep) if test_prep is not None else None,
    )


# --------------------------------------------------------------------------- the per-rule table


@dataclass(frozen=True)
class TradeoffRow:
    """One rule's fastest setting within an accuracy budget, chosen three ways, all reported on test.

    Attributes:
        rule: the rule's name.
        oracle: best grid setting chosen on test itself (optimistic), or None if none qualifies.
        honest: best grid setting chosen on validation (accuracy within budget there), measured on test.
        calibrated: the speed knob chosen by ``calibrate`` on validation (CRC, epsilon = budget).
    """

    rule: str
    oracle: OperatingPoint | None
    honest: OperatingPoint | None
    calibrated: Calibration


def tradeoff_rows(
    val: ExitTrace | PreparedTrace, test: ExitTrace | PreparedTrace, max_loss: float = 0.01,
    val_frontiers: dict | None = None, test_frontiers: dict | None = None,
) -> list[TradeoffRow]:
    """For every rule (``fixed``, the truncation baseline, included): the fastest setting losing
    at most ``max_loss`` of the task metric (the traces' ``prepare``d metric) against the full model."""
    val, test = prepare(val), prepare(test)
    if not (val.has_labels and test.has_labels):
        raise InputError("The trade-off table needs gold labels on both the validation and test splits.")
    val_frontiers = val_frontiers or all_frontiers(val)
    test_frontiers = test_frontiers or all_frontiers(test)
    rows = []
    for rule in val.rules:
        if rule not in test.rules:
            continue
        on_test = best_within_loss(test_frontiers[rule], max_loss)
        on_val = best_within_loss(val_frontiers[rule], max_loss)
        rows.append(TradeoffRow(
            rule=rule,
            oracle=None if on_test is None else test_frontiers[rule].point(on_test),
            honest=None if on_val is None else operating_point(test, rule, **val_frontiers[rule].params[on_val]),
            calibrated=calibrate(val, rule, max_loss, test=test),
        ))
    return rows


def tradeoff_markdown(rows: list[TradeoffRow], max_loss: float = 0.01) -> str:
    """The per-rule table as Markdown: setting, speed-up and test metric of each way of choosing."""
    def cells(point: OperatingPoint | None, setting: str | None = None) -> str:
        if point is None:
            return "none within budget | – | –"
        return (f"{setting or format_params(point.params)} | {point.speedup:.2f}× / {100 * point.saved_fraction:.0f}% "
                f"| {100 * point.score:.1f}")

    metric = rows[0].calibrated.test.metric_title if rows else "accuracy"
    lines = [
        f"Fastest setting losing at most {100 * max_loss:g} point(s) of {metric} against the full model "
        "(speed-up: L / mean exit layer, then the saved fraction 1 − mean exit layer / L that the EPEE, PABEE "
        f"and ConsistentEE code report; {metric} in % on the test split).",
        "",
        f"| rule | best on test (optimistic) | speed-up | {metric} | chosen on val | speed-up | {metric} "
        f"| CRC on val (ε={max_loss:g}) | speed-up | {metric} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        calibrated = row.calibrated
        lines.append(
            f"| {catalogue.RULES[row.rule].title} | {cells(row.oracle)} | {cells(row.honest)} "
            f"| {cells(calibrated.test, 'full model' if calibrated.params is None else None)} |"
        )
    if rows:
        reference = rows[0].calibrated.test
        lines += [
            "",
            f"Full model on test: {metric} {100 * reference.full_score:.1f}%, {reference.num_layers} layers, "
            f"{reference.num_examples} examples. *Best on test* picks the fastest grid setting within budget on "
            "the test split itself (optimistic); *chosen on val* makes the same pick on the validation split; "
            "*CRC* scans each rule's speed knob (other parameters at their defaults) on validation so that the "
            f"expected disagreement with the full model is at most {max_loss:g} (conformal risk control).",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CSV export


def _write_csv(header: list[str], rows, path: str | Path | None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


TRACE_CSV_HEADER = [
    "example", "layer", "gold", "predicted", "prob_predicted", "normalized_entropy", "patience_counter",
]


def trace_csv(trace: ExitTrace | PreparedTrace, path: str | Path | None = None) -> str:
    """The per-layer trace as CSV, one row per example × layer (example from 0, layer from 1).

    ``gold`` is empty where the label is unknown. Returns the text; also writes it to ``path``.
    """
    prep = prepare(trace)
    names = prep.trace.label_names
    labels = prep.trace.labels
    rows = (
        [n, i + 1, names[labels[n]] if labels[n] >= 0 else "", names[prep.predictions[n, i]],
         f"{prep.max_prob[n, i]:.6g}", f"{prep.entropy[n, i]:.6g}", int(prep.patience[n, i])]
        for n in range(prep.num_examples) for i in range(prep.num_layers)
    )
    return _write_csv(TRACE_CSV_HEADER, rows, path)


POINTS_CSV_HEADER = [
    "rule", "setting", "accuracy", "full_accuracy", "agreement_with_full", "average_exit_layer",
    "saved_fraction", "speedup", "on_frontier", "metric", "score", "full_score",
]


def operating_points_csv(
    points: list[OperatingPoint] | dict[str, Frontier], path: str | Path | None = None,
) -> str:
    """Operating points as CSV: a list of points, or every grid point of some frontiers.

    ``on_frontier`` is 1 for Pareto-optimal grid points, 0 for the others, empty for a
    plain list of points. Returns the text; also writes it to ``path``.
    """
    if isinstance(points, dict):
        listed = []
        for f in points.values():
            on = set(int(i) for i in f.pareto)
            listed += [(f.point(i), int(i in on)) for i in range(len(f.params))]
    else:
        listed = [(p, "") for p in points]

    def number(x: float) -> str:
        return "" if math.isnan(x) else f"{x:.6g}"

    rows = (
        [p.rule, format_params(p.params), number(p.accuracy), number(p.full_accuracy), number(p.agreement),
         number(p.average_exit_layer), number(p.saved_fraction), number(p.speedup), flag,
         p.metric, number(p.score), number(p.full_score)]
        for p, flag in listed
    )
    return _write_csv(POINTS_CSV_HEADER, rows, path)
