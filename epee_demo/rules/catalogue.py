"""Exit rules as pure NumPy functions over per-layer class distributions: one catalogue.

Every rule takes ``probs`` of shape [N, L, C] (N examples, L exits, C classes) and
returns the 1-based exit layer of each example, an int array of shape [N]. A rule
"fires" at a layer; the example exits at the first layer where it fires, and at
layer L when it never fires. Nothing here touches torch or the UI, so a slider
move re-runs a rule over thousands of cached examples in a few milliseconds.

``RULES`` is the single definition of every rule: its title, its parameters (default,
page control, frontier grid), where its scores come from, what per-layer value it
compares (its counter or score), its colour and symbol, the source it follows, and its
``step``: what it decides at one layer given that layer's inputs and its own state.
The step is written once, vectorized over examples and over settings (parameters may be
arrays [S, 1]), and ``LayerwiseRule`` runs it layer by layer: over all layers of a
trace (``exit_layers``), over a grid of settings at once (``epee_demo.analysis.whole_split``), and
over the examples still in flight in real early exit (``epee_demo.trace.early_exit``).

Definitions (each rule's ``source`` names the code it follows):

* normalized entropy ``Hn(p) = -sum_c p_c ln p_c / ln C`` (0 ln 0 = 0; 0 = certain, 1 = uniform);
* PABEE counter ``cnt_1 = 0``, ``cnt_i = cnt_{i-1} + 1`` if ``argmax p_i == argmax p_{i-1}`` else 0;
* EPEE exits at the first layer with ``Hn(p_i) < tau`` or ``cnt_i == patience``;
* patience 0 means "run every layer" in PABEE, EPEE, PCEE and F-PABEE (no test is consulted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

DIVERGENCES = ("kl", "reverse_kl", "symmetric_kl", "js")


# --------------------------------------------------------------------------- exact measures


def _entropy_terms(p: np.ndarray) -> np.ndarray:
    """-p ln p elementwise, with 0 ln 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each distribution divided by ln C: [..., C] -> [...], values in [0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.clip(_entropy_terms(probs).sum(axis=-1) / np.log(probs.shape[-1]), 0.0, 1.0)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact KL(p || q) over the last axis: +inf where p has mass q lacks, clamped at >= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)
    return np.maximum(terms.sum(axis=-1), 0.0)


def divergence(p: np.ndarray, q: np.ndarray, measure: str = "js") -> np.ndarray:
    """Divergence between distributions p and q over the last axis, exact, in nats.

    ``kl`` is KL(p || q), ``reverse_kl`` KL(q || p), ``symmetric_kl`` their sum (each
    +inf where the first distribution has mass the second lacks), and ``js`` the
    Jensen-Shannon divergence (finite, at most ln 2). All are clamped at >= 0, so
    rounding never makes them negative.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if measure == "kl":
        return _kl(p, q)
    if measure == "reverse_kl":
        return _kl(q, p)
    if measure == "symmetric_kl":
        return _kl(p, q) + _kl(q, p)
    if measure == "js":
        mixture = 0.5 * (p + q)
        return np.clip(0.5 * _kl(p, mixture) + 0.5 * _kl(q, mixture), 0.0, np.log(2.0))
    raise ValueError(f"unknown divergence measure {measure!r}; choose one of {DIVERGENCES}")


def _check_probs(probs: np.ndarray) -> np.ndarray:
    """``probs`` as float64 [N, L, C], each distribution renormalized to sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape [N, L, C]; got shape {probs.shape}")
    if probs.shape[1] < 1 or probs.shape[2] < 2:
        raise ValueError(f"probs needs at least 1 layer and 2 classes; got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probs must be finite and non-negative")
    total = probs.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("every distribution in probs needs some positive mass")
    return probs / total


# --------------------------------------------------------------------------- what a step reads


class LayerInputs:
    """What the rules read at one layer of N examples; each quantity is computed on first use.

    ``probs`` [N, C] is this layer's distribution, ``previous`` the previous layer's (None at
    layer 1), ``scores`` [N] the rule's score array at this layer (None for rules without).
    ``known`` may hand over quantities already computed (``entropy``, ``max_prob``,
    ``prediction``, ``previous_prediction``, ``divergence.<measure>``), as the trade-off does.
    """

    def __init__(self, index: int, probs: np.ndarray, previous: np.ndarray | None = None,
                 scores: np.ndarray | None = None, **known):
        self.index = index  # 1-based layer number
        self.probs, self.previous, self.scores = probs, previous, scores
        self._known = known

    def _get(self, name: str, compute: Callable):
        if name not in self._known:
            self._known[name] = compute()
        return self._known[name]

    @property
    def entropy(self) -> np.ndarray:
        return self._get("entropy", lambda: normalized_entropy(self.probs))

    @property
    def max_prob(self) -> np.ndarray:
        return self._get("max_prob", lambda: self.probs.max(axis=-1))

    @property
    def prediction(self) -> np.ndarray:
        return self._get("prediction", lambda: self.probs.argmax(axis=-1))

    @property
    def previous_prediction(self) -> np.ndarray | None:
        return self._get("previous_prediction",
                         lambda: None if self.previous is None else self.previous.argmax(axis=-1))

    def divergence(self, measure: str) -> np.ndarray:
        """D(p_{i-1}, p_i) per example; +inf at layer 1 (no previous layer)."""
        def compute():
            if self.previous is None:
                return np.full(len(self.prediction), np.inf)
            return divergence(self.previous, self.probs, measure)
        return self._get(f"divergence.{measure}", compute)


# --------------------------------------------------------------------------- steps


def _run_length(state: dict, condition: np.ndarray) -> np.ndarray:
    """A counter of consecutive layers where ``condition`` holds, ending here (kept in ``state``)."""
    state["counter"] = np.where(condition, state.get("counter", 0) + 1, 0)
    state["shown"] = state["counter"]
    return state["counter"]


def _reaches_patience(counter: np.ndarray, patience) -> np.ndarray:
    """The counter equals patience; patience 0 never fires (every layer runs)."""
    patience = np.asarray(patience)
    return (counter == patience) & (patience > 0)


def _same_prediction(x: LayerInputs) -> np.ndarray:
    if x.previous_prediction is None:
        return np.zeros(len(x.prediction), dtype=bool)
    return x.prediction == x.previous_prediction


def _step_entropy(x, state, p):
    return x.entropy < np.asarray(p["tau"])


def _step_patience(x, state, p):
    return _reaches_patience(_run_length(state, _same_prediction(x)), p["patience"])


def _step_epee(x, state, p):
    counter = _run_length(state, _same_prediction(x))
    patience = np.asarray(p["patience"])
    return ((x.entropy < np.asarray(p["tau"])) | (counter == patience)) & (patience > 0)


def _step_pcee(x, state, p):
    # running sums of the distributions, sum_{j<=i} p_j, for the answer (index 0: nothing yet)
    cumulative = state.setdefault("cumulative", [np.zeros_like(x.probs)])
    cumulative.append(cumulative[-1] + x.probs)
    return _reaches_patience(_run_length(state, x.entropy < np.asarray(p["tau"])), p["patience"])


def _answer_pcee(x, state, p, rows):
    # PCEE-BERT's default answer: the mean distribution of the confident run, i.e. of the last
    # `patience` layers (the rule fired, so they were all confident)
    patience = np.asarray(p["patience"])
    run = np.broadcast_to(patience, np.broadcast_shapes(patience.shape, state["counter"].shape))[rows]
    stack, examples = np.stack(state["cumulative"]), rows[-1]
    return (stack[-1, examples] - stack[len(stack) - 1 - run, examples]) / run[:, None]


def _step_maxprob(x, state, p):
    return x.max_prob >= np.asarray(p["threshold"])


def _step_fpabee(x, state, p):
    stable = x.divergence(p["measure"]) < np.asarray(p["tau"])
    return _reaches_patience(_run_length(state, stable), p["patience"])


def _step_calm(x, state, p):
    # layer 1 has no previous state: its confidence is 0 ("previous state is missing")
    confidence = np.zeros(len(x.scores)) if x.index == 1 else np.asarray(x.scores, dtype=np.float64)
    state["shown"] = confidence
    return confidence >= np.asarray(p["threshold"])


def _step_consistentee(x, state, p):
    state["shown"] = np.asarray(x.scores, dtype=np.float64)
    return state["shown"] > np.asarray(p["threshold"])


def _step_jei(x, state, p):
    # dynn's WEIGHTED evaluation: p_l = max(0, min(g_l, 1 - sum_{j<l} g_j)),
    # a_l = clip(p_l / prod_{j<l} (1 - a_j), 0, 1); exit at the first a_l >= threshold.
    gate = np.asarray(x.scores, dtype=np.float64)
    exit_mass = np.maximum(0.0, np.minimum(gate, 1.0 - state.get("gate_sum", 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        activation = np.clip(exit_mass / state.get("stay", 1.0), 0.0, 1.0)
    state["gate_sum"] = state.get("gate_sum", 0.0) + gate
    state["stay"] = state.get("stay", 1.0) * (1.0 - activation)
    state["shown"] = activation
    return activation >= np.asarray(p["threshold"])


def _step_fixed(x, state, p):
    return np.zeros(len(x.prediction), dtype=bool) | (x.index == np.asarray(p["layer"]))


# --------------------------------------------------------------------------- the catalogue


def _decades(first: int, last: int) -> np.ndarray:
    """1, 1.5, 2, 3, 5, 7 times each power of ten from 10**first to 10**last."""
    mantissas = np.array([1.0, 1.5, 2.0, 3.0, 5.0, 7.0])
    return np.concatenate([mantissas * 10.0 ** d for d in range(first, last + 1)])


# Fixed grids (they do not depend on the data, which keeps calibration valid).
# ENTROPY_TAUS: the exit fires when Hn < tau; 0 never fires, 1 fires almost always.
ENTROPY_TAUS = np.round(np.unique(np.concatenate([[0.0], _decades(-4, -2), np.linspace(0.1, 1.0, 19)])), 10)
# PROBABILITY_THRESHOLDS (max probability, learned exit probabilities, hidden-state cosine):
# ascending; at 0 the rules that compare with >= fire everywhere.
PROBABILITY_THRESHOLDS = np.round(np.sort(1.0 - ENTROPY_TAUS), 10)
# DIVERGENCE_TAUS (F-PABEE, nats): the counter grows when D(p_{i-1}, p_i) < tau.
DIVERGENCE_TAUS = np.round(np.concatenate([[0.0], _decades(-5, 0)]), 12)


FPABEE_NOTE = ("F-PABEE follows its paper (exact KL and JS divergences, answer of the exit layer); its released "
               "code differs: its 'JSD' is the entropy of the mixture, its KLs are cross-entropies, and it "
               "answers with the earlier of the two layers.")
PCEE_NOTE = ("PCEE answers with the mean distribution of its confident run (PCEE-BERT's default), "
             "not the exit layer's alone.")


@dataclass(frozen=True)
class Control:
    """A page control that sets a rule parameter: what the sliders are built from.

    ``maximum`` None means the model's number of layers; ``choices`` makes it a dropdown;
    ``info`` is a line shown under it.
    """

    name: str
    label: str
    minimum: float = 0.0
    maximum: float | None = 1.0
    step: float = 0.01
    choices: tuple = ()
    info: str = ""


CONTROLS: dict[str, Control] = {c.name: c for c in (
    Control("tau", "tau: normalized entropy threshold (exit when Hn < tau; Hn = entropy / ln C)"),
    Control("patience", "patience: exit when the counter reaches it", 0, None, 1,
            info="patience 0 runs every layer (the full model), as in the PABEE code"),
    Control("threshold", "threshold"),
    Control("divergence_tau", "divergence tau, nats (count layers with divergence < tau)", 0.0, 0.7, 0.005),
    Control("measure", "divergence", choices=DIVERGENCES, info=FPABEE_NOTE),
    Control("layer", "fixed exit layer", 1, None, 1),
)}


@dataclass(frozen=True)
class Param:
    """One rule parameter: its default, the page control that sets it and its frontier grid.

    ``grid`` is an array of values, or ``"layers"`` for 1..L; ``faster_when_raised`` says
    whether raising it makes the rule exit earlier (the order calibration scans it in).
    """

    name: str
    default: float | int | str
    control: str
    grid: object
    faster_when_raised: bool = False


def _tau(default):
    return Param("tau", default, "tau", ENTROPY_TAUS, faster_when_raised=True)


def _patience(default):
    return Param("patience", default, "patience", "layers")


def _threshold(default):
    return Param("threshold", default, "threshold", PROBABILITY_THRESHOLDS)


@dataclass(frozen=True)
class RuleSpec:
    """Everything about one exit rule, in one place.

    Attributes:
        name, title: key and page title.
        parameters: its ``Param``s, in the order the page and the API name them.
        step: ``step(inputs, state, params) -> fires`` at one layer: ``inputs`` a ``LayerInputs``,
            ``state`` the rule's own dict (empty at layer 1), ``params`` values that are scalars or
            arrays [S, 1]; returns bool [N] or [S, N].
        source: the authors' code (or definition) the step follows.
        score_source: None, ``"state_cosine"`` (the trace's hidden-state cosine) or
            ``"exit_scores"`` (the learned scorer's per-layer output, stored under the rule's name).
        shown: what ``state["shown"]`` holds per layer (its counter or compared score), for
            axis labels; "" when the rule compares nothing of its own.
        answer: ``answer(inputs, state, params, rows) -> probs [M, C]``, the distributions the
            entries ``rows`` (an index tuple into the fires array) answer with where the rule fired
            there; None: the exit layer's own.
        speed_knob: the parameter that makes it faster or slower (calibration scans it).
        note: one line the page shows with the rule, where its definition differs from a
            reading users may carry over (its code, or another answer).
        colour, symbol: how figures draw it.
    """

    name: str
    title: str
    parameters: tuple
    step: Callable
    source: str
    score_source: str | None = None
    shown: str = ""
    answer: Callable | None = None
    speed_knob: str = ""
    note: str = ""
    colour: str = "#0072B2"
    symbol: str = "circle"

    @property
    def params(self) -> dict:
        """Parameter name -> default."""
        return {param.name: param.default for param in self.parameters}

    @property
    def needs_scores(self) -> bool:
        return self.score_source is not None

    def parameter(self, name: str) -> Param:
        return next(param for param in self.parameters if param.name == name)


_PABEE_COUNTER = "patience counter (same answer as previous layer)"

RULES: dict[str, RuleSpec] = {spec.name: spec for spec in (
    RuleSpec("epee", "EPEE (entropy or patience)", (_tau(0.2), _patience(3)), _step_epee,
             "EPEE: Hn < tau or the PABEE counter reaches patience; patience 0 runs every layer",
             shown=_PABEE_COUNTER, speed_knob="tau", colour="#0072B2", symbol="star"),
    RuleSpec("entropy", "Entropy (DeeBERT)", (_tau(0.2),), _step_entropy,
             "castorini/DeeBERT: entropy < threshold (DeeBERT's threshold is in nats = tau * ln C)",
             speed_knob="tau", colour="#E69F00", symbol="circle"),
    RuleSpec("patience", "Patience (PABEE)", (_patience(3),), _step_patience,
             "JetRunner/PABEE pabee/modeling_bert.py: counter == patience; patience 0 uses all layers",
             shown=_PABEE_COUNTER, speed_knob="patience", colour="#009E73", symbol="square"),
    RuleSpec("pcee", "PCEE (confident layers in a row)", (_tau(0.2), _patience(2)), _step_pcee,
             "PCEE-BERT: patience consecutive layers with Hn < tau; answers with the run's mean distribution",
             shown="confident layers in a row (Hn < tau)", answer=_answer_pcee, note=PCEE_NOTE,
             speed_knob="tau", colour="#CC79A7", symbol="diamond"),
    RuleSpec("maxprob", "Max probability", (_threshold(0.9),), _step_maxprob,
             "max_c p_c >= threshold", speed_knob="threshold", colour="#56B4E9", symbol="triangle-up"),
    RuleSpec("fpabee", "F-PABEE (divergence patience)",
             (Param("tau", 0.05, "divergence_tau", DIVERGENCE_TAUS, faster_when_raised=True), _patience(2),
              Param("measure", "js", "measure", DIVERGENCES)), _step_fpabee,
             "F-PABEE paper: patience consecutive layers with D(p_{i-1}, p_i) < tau, exact divergences",
             shown="stable layers in a row (divergence < tau)", note=FPABEE_NOTE,
             speed_knob="tau", colour="#D55E00", symbol="triangle-down"),
    RuleSpec("calm", "Hidden-state saturation (CALM)", (_threshold(0.95),), _step_calm,
             "CALM state saturation: cos(h_{i-1}, h_i) >= threshold; layer 1's confidence is 0",
             score_source="state_cosine", shown="cosine with the previous layer's state (0 at layer 1)",
             speed_knob="threshold", colour="#999999", symbol="cross"),
    RuleSpec("consistentee", "ConsistentEE (learned policy)", (_threshold(0.5),), _step_consistentee,
             "ZeroNLP/ConsistentEE: exit when the policy probability > threshold",
             score_source="exit_scores", shown="policy exit probability",
             speed_knob="threshold", colour="#7F3C8D", symbol="x"),
    RuleSpec("jei", "JEI-DNN (learned gate)", (_threshold(0.5),), _step_jei,
             "networkslab/dynn classifier_training_helper.py, WEIGHTED: first a_l >= threshold",
             score_source="exit_scores", shown="exit probability a_l given no earlier exit",
             speed_knob="threshold", colour="#3B7D23", symbol="pentagon"),
    RuleSpec("fixed", "Fixed depth (truncation)", (Param("layer", 1, "layer", "layers"),), _step_fixed,
             "every example runs the first `layer` layers", speed_knob="layer",
             colour="#000000", symbol="line-ns-open"),
)}


def check_params(rule: str, params: dict, num_layers: int | None = None) -> dict:
    """The rule's full parameter set (defaults filled in); unknown rules, parameters or values raise."""
    if rule not in RULES:
        raise ValueError(f"unknown exit rule {rule!r}; choose one of {sorted(RULES)}")
    unknown = set(params) - set(RULES[rule].params)
    if unknown:
        raise ValueError(f"rule {rule!r} takes no parameter(s) {sorted(unknown)}")
    full = {**RULES[rule].params, **params}
    if "measure" in full and full["measure"] not in DIVERGENCES:
        raise ValueError(f"unknown divergence measure {full['measure']!r}; choose one of {DIVERGENCES}")
    if "patience" in full:
        patience = np.asarray(full["patience"], dtype=np.float64)
        if np.any(patience < 0) or np.any(patience != np.round(patience)):
            raise ValueError("patience must be a whole number of layers, at least 0 (0 runs every layer)")
    if "layer" in full and num_layers is not None:
        layer = np.asarray(full["layer"])
        if np.any((layer < 1) | (layer > num_layers)):
            raise ValueError(f"fixed layer must be between 1 and {num_layers}; got {full['layer']}")
    return full


class LayerwiseRule:
    """An exit rule evaluated one layer at a time over N examples (and S settings at once).

    ``step(probs, scores, **known)`` takes the next layer's distributions [N, C] (for the
    score-based rules its scores [N]; ``known`` as in ``LayerInputs``) and returns where the
    rule fires there, bool [N], or [S, N] when parameters are arrays of S settings.
    ``answer(rows)`` gives the distributions the fired entries answer with (the layer's own, or
    the rule's answer such as PCEE's run mean), and ``keep(index)`` keeps only the examples
    still in flight. The state is a few arrays per
    example, so a step costs the same at every depth. ``exit_layers``, the trade-off grids and
    real early exit all run this same step.
    """

    def __init__(self, rule: str, num_layers: int, num_examples: int, **params):
        self.params = check_params(rule, params, num_layers)
        self.rule, self.spec = rule, RULES[rule]
        self.num_layers = num_layers
        self.layer = 0  # layers seen so far
        self.state: dict = {}
        self.previous: np.ndarray | None = None  # the previous layer's distributions [N, C]
        self.inputs: LayerInputs | None = None

    def step(self, probs: np.ndarray, scores: np.ndarray | None = None, **known) -> np.ndarray:
        """Where the rule fires at the next layer, bool [N] (or [S, N])."""
        self.layer += 1
        if self.spec.needs_scores and scores is None:
            raise ValueError(f"rule {self.rule!r} needs a per-layer score array [N, L]")
        self.inputs = LayerInputs(self.layer, probs, self.previous, scores, **known)
        fires = self.spec.step(self.inputs, self.state, self.params)
        self.previous = probs
        return fires

    def answer(self, rows: tuple) -> np.ndarray:
        """The distributions [M, C] that the fired entries ``rows`` (an index tuple into the last
        step's fires array, e.g. ``np.nonzero(fires)``) answer with."""
        if self.spec.answer is None:
            return self.inputs.probs[rows[-1]]
        return self.spec.answer(self.inputs, self.state, self.params, rows)

    @property
    def shown(self) -> np.ndarray | None:
        """The per-example value the rule compared at the last step (counter or score), if any."""
        return self.state.get("shown")

    def keep(self, index: np.ndarray) -> None:
        """Keep only the examples at positions ``index`` (int [K])."""
        for key, value in self.state.items():
            if isinstance(value, list):  # per-layer arrays [N, C]
                self.state[key] = [v[index] for v in value]
            elif isinstance(value, np.ndarray) and value.ndim:  # the example axis is the last
                self.state[key] = value[..., index]
        if self.previous is not None:
            self.previous = self.previous[index]


def _scores_at(scores, index: int):
    return None if scores is None else np.asarray(scores)[:, index]


def _check_scores(rule: str, scores, shape: tuple) -> None:
    if RULES[rule].needs_scores and scores is None:
        raise ValueError(f"rule {rule!r} needs a per-layer score array [N, L]")
    if scores is not None and np.shape(scores) != shape:
        raise ValueError(f"scores for rule {rule!r} must have shape {shape}; got {np.shape(scores)}")


def evaluate_layers(layerwise: LayerwiseRule, layers: Iterable, *, want_probs: bool = False,
                    want_shown: bool = False) -> dict:
    """Step ``layerwise`` through ``layers`` (one ``(probs, scores, known)`` per layer, L in all).

    Returns ``exits`` (int, 1-based), ``classes`` (the class answered there) of shape [N] or
    [S, N]; with ``want_probs`` also ``probs``, the distributions answered [..., N, C]; with
    ``want_shown`` also ``shown``, the value the rule compared at every layer [..., N, L]
    (NaN for rules that compare nothing of their own). Examples exit at the first layer where
    the rule fires, at layer L otherwise; a fired exit answers with the rule's answer, a
    fall-through with the last layer's distribution.
    """
    num_layers = layerwise.num_layers
    out: dict = {}
    for index, (probs, scores, known) in enumerate(layers):
        fires = layerwise.step(probs, scores, **known)
        inputs = layerwise.inputs
        if index == 0:
            shape = fires.shape
            done = np.zeros(shape, dtype=bool)
            out["exits"] = np.full(shape, num_layers, dtype=np.int64)
            out["classes"] = np.zeros(shape, dtype=np.int64)
            if want_probs:
                out["probs"] = np.zeros(shape + (probs.shape[-1],))
            if want_shown:
                out["shown"] = np.full(shape + (num_layers,), np.nan)
        now = ~done if index == num_layers - 1 else fires & ~done
        if want_shown and layerwise.shown is not None:
            out["shown"][..., index] = layerwise.shown
        if not now.any():
            continue
        out["exits"][now] = index + 1
        out["classes"][now] = np.broadcast_to(inputs.prediction, shape)[now]
        if want_probs:
            out["probs"][now] = np.broadcast_to(inputs.probs, shape + probs.shape[-1:])[now]
        rows = np.nonzero(now & fires)
        if layerwise.spec.answer is not None and rows[0].size:
            answer = layerwise.answer(rows)
            out["classes"][rows] = answer.argmax(axis=-1)
            if want_probs:
                out["probs"][rows] = answer
        done |= now
    return out


def run_rule(probs: np.ndarray, rule: str, *, scores=None, want_probs: bool = True, want_shown: bool = True,
             **params) -> dict:
    """``evaluate_layers`` of ``rule`` over a whole trace [N, L, C]: exits, classes and, as asked, probs, shown."""
    probs = _check_probs(probs)
    n, num_layers, _ = probs.shape
    layerwise = LayerwiseRule(rule, num_layers, n, **params)
    _check_scores(rule, scores, (n, num_layers))
    layers = ((probs[:, i], _scores_at(scores, i), {}) for i in range(num_layers))
    return evaluate_layers(layerwise, layers, want_probs=want_probs, want_shown=want_shown)


def exit_layers(probs: np.ndarray, rule: str, *, scores=None, **params) -> np.ndarray:
    """1-based exit layer of each example under ``rule``: [N, L, C] -> int [N].

    Rules and parameters: ``entropy`` (tau), ``patience`` (patience), ``epee`` (tau,
    patience), ``pcee`` (tau, patience), ``maxprob`` (threshold), ``fpabee`` (tau,
    patience, measure), ``fixed`` (layer), and the score-based ``calm``,
    ``consistentee`` and ``jei`` (threshold, with ``scores`` [N, L]). If no layer
    fires, the last layer answers; patience 0 runs every layer. ``probs`` are
    renormalized to sum to 1.
    """
    return run_rule(probs, rule, scores=scores, want_probs=False, want_shown=False, **params)["exits"]


def exit_answers(probs: np.ndarray, rule: str, *, scores=None, **params) -> tuple[np.ndarray, np.ndarray]:
    """Exit layers int [N] and the distributions answered there [N, C] (PCEE: its run's mean)."""
    out = run_rule(probs, rule, scores=scores, want_shown=False, **params)
    return out["exits"], out["probs"]


def rule_values(probs: np.ndarray, rule: str, *, scores=None, **params) -> np.ndarray | None:
    """The value the rule compares at every layer (``RuleSpec.shown``), [N, L], or None if none."""
    if not RULES[rule].shown:
        return None
    return run_rule(probs, rule, scores=scores, want_probs=False, **params)["shown"]


def patience_counters(probs: np.ndarray) -> np.ndarray:
    """PABEE counter per layer, [N, L, C] -> int [N, L]; layer 1's counter is 0."""
    return rule_values(probs, "patience").astype(np.int64)


def layer_divergences(probs: np.ndarray, measure: str = "js") -> np.ndarray:
    """Divergence between consecutive layers, [N, L, C] -> [N, L]; layer 1 gets +inf.

    Entry i compares the previous layer's distribution p_{i-1} (first argument) with p_i.
    """
    probs = _check_probs(probs)
    out = np.full(probs.shape[:2], np.inf)
    out[:, 1:] = divergence(probs[:, :-1], probs[:, 1:], measure)
    return out


def memorized_layers(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Memorized layer of each example: [N, L, C], [N] -> int [N].

    The earliest 1-based layer m from which every exit (m, m+1, ..., L) predicts the
    gold label; ``L + 1`` when the last exit is wrong (never memorized).
    """
    probs = np.asarray(probs)
    correct = probs.argmax(axis=-1) == np.asarray(labels, dtype=np.int64)[:, None]
    trailing_correct = np.cumprod(correct[:, ::-1], axis=1).sum(axis=1)
    return (probs.shape[1] + 1 - trailing_correct).astype(np.int64)
