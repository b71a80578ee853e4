"""Exit rules as pure NumPy functions over per-layer class distributions.

Every rule takes ``probs`` of shape [N, L, C] (N examples, L exits, C classes) and
returns the 1-based exit layer of each example, an int array of shape [N]. A rule
"fires" at a layer; the example exits at the first layer where it fires, and at
layer L when it never fires. Nothing here touches torch or the UI, so a slider
move re-runs a rule over thousands of cached examples in a few milliseconds.

Each rule is written once, layer by layer (``LayerwiseRule``): ``firing_mask`` steps
it over all layers of a trace, and real early exit (``epee_demo.inference``) steps
the same object over the examples still in flight.

Definitions (the EPEE paper's):

* normalized entropy ``Hn(p) = -sum_c p_c log p_c / ln C`` (0 = certain, 1 = uniform);
* PABEE patience counter ``cnt_1 = 0``, ``cnt_i = cnt_{i-1} + 1`` if
  ``argmax p_i == argmax p_{i-1}`` else ``0``;
* EPEE exits at the first layer with ``Hn(p_i) < tau`` or ``cnt_i == patience``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12

DIVERGENCES = ("kl", "reverse_kl", "symmetric_kl", "js")


@dataclass(frozen=True)
class RuleSpec:
    """What a rule is called, what it needs and which parameters it takes.

    ``params`` maps each parameter name to its default; ``needs_scores`` says the rule
    reads a per-layer score array [N, L] (a learned exit probability or a hidden-state
    similarity) instead of, or beside, the class distributions.
    """

    name: str
    title: str
    params: dict
    needs_scores: bool = False


RULES: dict[str, RuleSpec] = {
    spec.name: spec
    for spec in (
        RuleSpec("epee", "EPEE (entropy or patience)", {"tau": 0.2, "patience": 3}),
        RuleSpec("entropy", "Entropy (DeeBERT)", {"tau": 0.2}),
        RuleSpec("patience", "Patience (PABEE)", {"patience": 3}),
        RuleSpec("pcee", "PCEE (confident layers in a row)", {"tau": 0.2, "patience": 2}),
        RuleSpec("maxprob", "Max probability", {"threshold": 0.9}),
        RuleSpec("fpabee", "F-PABEE (divergence patience)",
                 {"tau": 0.05, "patience": 2, "measure": "js"}),
        RuleSpec("calm", "Hidden-state saturation (CALM)", {"threshold": 0.95}, needs_scores=True),
        RuleSpec("consistentee", "ConsistentEE (learned policy)", {"threshold": 0.5}, needs_scores=True),
        RuleSpec("jei", "JEI-DNN (learned gate)", {"threshold": 0.5}, needs_scores=True),
        RuleSpec("fixed", "Fixed depth (truncation)", {"layer": 1}),
    )
}


def _check_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape [N, L, C]; got shape {probs.shape}")
    if probs.shape[1] < 1 or probs.shape[2] < 2:
        raise ValueError(f"probs needs at least 1 layer and 2 classes; got shape {probs.shape}")
    return probs


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each distribution divided by ln C: [..., C] -> [...], values in [0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = probs.shape[-1]
    entropy = -np.sum(probs * np.log(np.clip(probs, _EPS, 1.0)), axis=-1)
    return np.clip(entropy / np.log(num_classes), 0.0, 1.0)


def patience_counters(probs: np.ndarray) -> np.ndarray:
    """PABEE counter per layer, [N, L, C] -> int [N, L]; layer 1's counter is 0."""
    return _layerwise_counters(probs, "patience")


def confident_run_counters(probs: np.ndarray, tau: float) -> np.ndarray:
    """PCEE counter per layer: consecutive layers (ending here) with Hn < tau, int [N, L]."""
    return _layerwise_counters(probs, "pcee", tau=tau)


def divergence(p: np.ndarray, q: np.ndarray, measure: str = "js") -> np.ndarray:
    """Divergence between distributions p and q over the last axis.

    ``kl`` is KL(p || q), ``reverse_kl`` KL(q || p), ``symmetric_kl`` their sum and
    ``js`` the Jensen-Shannon divergence in nats (at most ln 2).
    """
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0)
    q = np.clip(np.asarray(q, dtype=np.float64), _EPS, 1.0)

    def kl(a, b):
        return np.sum(a * (np.log(a) - np.log(b)), axis=-1)

    if measure == "kl":
        return kl(p, q)
    if measure == "reverse_kl":
        return kl(q, p)
    if measure == "symmetric_kl":
        return kl(p, q) + kl(q, p)
    if measure == "js":
        mixture = 0.5 * (p + q)
        return np.clip(0.5 * kl(p, mixture) + 0.5 * kl(q, mixture), 0.0, np.log(2.0))
    raise ValueError(f"unknown divergence measure {measure!r}; choose one of {DIVERGENCES}")


def layer_divergences(probs: np.ndarray, measure: str = "js") -> np.ndarray:
    """Divergence between consecutive layers, [N, L, C] -> [N, L]; layer 1 gets +inf.

    Entry i compares the previous layer's distribution p_{i-1} (first argument) with p_i.
    """
    probs = _check_probs(probs)
    out = np.full(probs.shape[:2], np.inf)
    out[:, 1:] = divergence(probs[:, :-1], probs[:, 1:], measure)
    return out


def divergence_counters(probs: np.ndarray, tau: float, measure: str = "js") -> np.ndarray:
    """F-PABEE counter per layer: consecutive layers whose divergence from the previous is < tau."""
    return _layerwise_counters(probs, "fpabee", tau=tau, measure=measure)


def first_firing_layer(fires: np.ndarray) -> np.ndarray:
    """1-based first True layer of each row of a boolean [N, L] array; L where none is True."""
    fires = np.asarray(fires, dtype=bool).copy()
    fires[:, -1] = True
    return fires.argmax(axis=1).astype(np.int64) + 1


def _check_rule(rule: str, params: dict) -> dict:
    """The rule's full parameter set (defaults filled in); unknown rules or parameters raise."""
    if rule not in RULES:
        raise ValueError(f"unknown exit rule {rule!r}; choose one of {sorted(RULES)}")
    unknown = set(params) - set(RULES[rule].params)
    if unknown:
        raise ValueError(f"rule {rule!r} takes no parameter(s) {sorted(unknown)}")
    return {**RULES[rule].params, **params}


class LayerwiseRule:
    """An exit rule evaluated one layer at a time over N examples: the form real early exit runs.

    ``step(probs, scores)`` takes the next layer's distributions [N, C] (and, for the
    score-based rules, its scores [N]) and returns where the rule fires there, bool [N];
    ``keep(index)`` keeps only the examples still in flight. Each rule's state (its
    counter, the previous layer's prediction or distribution) is a few arrays of length
    N, so a step costs the same at every depth. ``firing_mask`` runs these same steps
    over all layers, so the trace's exit layers and real early exit's agree by construction.
    """

    def __init__(self, rule: str, num_layers: int, num_examples: int, **params):
        self.rule = rule
        self.params = _check_rule(rule, params)
        self.num_layers = num_layers
        if rule == "fixed" and not 1 <= int(self.params["layer"]) <= num_layers:
            raise ValueError(f"fixed layer must be in 1..{num_layers}; got {self.params['layer']}")
        self.needs_scores = RULES[rule].needs_scores
        self.layer = 0  # layers seen so far
        self.counter = np.zeros(num_examples, dtype=np.int64)
        self.previous = None  # the previous layer's prediction [N] or distribution [N, C]

    def step(self, probs: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Where the rule fires at the next layer, bool [N], given that layer's probs [N, C]."""
        self.layer += 1
        rule, p = self.rule, self.params
        if self.needs_scores:
            if scores is None:
                raise ValueError(f"rule {rule!r} needs a per-layer score array [N, L]")
            # a learned exit probability (consistentee, jei) or the cosine similarity of
            # consecutive pooled hidden states (calm: NaN at layer 1, which never fires)
            return np.asarray(scores) >= p["threshold"]
        if rule == "maxprob":
            return probs.max(axis=-1) >= p["threshold"]
        if rule == "fixed":
            return np.full(len(probs), self.layer == int(p["layer"]))
        if rule == "entropy":
            return normalized_entropy(probs) < p["tau"]
        if rule == "pcee":
            self.counter = np.where(normalized_entropy(probs) < p["tau"], self.counter + 1, 0)
            return self.counter == p["patience"]
        if rule == "fpabee":
            if self.previous is not None:
                stable = divergence(self.previous, probs, p["measure"]) < p["tau"]
                self.counter = np.where(stable, self.counter + 1, 0)
            self.previous = probs
            return self.counter == p["patience"]
        # patience and epee: the PABEE counter of unchanged predictions
        predictions = probs.argmax(axis=-1)
        if self.previous is not None:
            self.counter = np.where(predictions == self.previous, self.counter + 1, 0)
        self.previous = predictions
        fires = self.counter == p["patience"]
        return fires | (normalized_entropy(probs) < p["tau"]) if rule == "epee" else fires

    def keep(self, index: np.ndarray) -> None:
        """Keep only the examples at positions ``index`` (int [K])."""
        self.counter = self.counter[index]
        if self.previous is not None:
            self.previous = self.previous[index]


def _layerwise_counters(probs: np.ndarray, rule: str, **params) -> np.ndarray:
    """The counter ``LayerwiseRule`` keeps for ``rule``, after each layer: [N, L, C] -> int [N, L]."""
    probs = _check_probs(probs)
    layerwise = LayerwiseRule(rule, probs.shape[1], len(probs), **params)
    counters = []
    for layer in range(probs.shape[1]):
        layerwise.step(probs[:, layer])
        counters.append(layerwise.counter)
    return np.stack(counters, axis=1)


def firing_mask(probs: np.ndarray, rule: str, *, scores=None, **params) -> np.ndarray:
    """Where ``rule`` fires: boolean [N, L]. Parameters missing from ``params`` take their defaults."""
    probs = _check_probs(probs)
    n, num_layers, _ = probs.shape
    layerwise = LayerwiseRule(rule, num_layers, n, **params)
    if scores is not None and np.shape(scores) != (n, num_layers):
        raise ValueError(f"scores for rule {rule!r} must have shape {(n, num_layers)}; got {np.shape(scores)}")
    return np.stack([
        layerwise.step(probs[:, i], None if scores is None else scores[:, i]) for i in range(num_layers)
    ], axis=1)


def exit_layers(probs: np.ndarray, rule: str, *, scores=None, **params) -> np.ndarray:
    """1-based exit layer of each example under ``rule``: [N, L, C] -> int [N].

    Rules and parameters: ``entropy`` (tau), ``patience`` (patience), ``epee`` (tau,
    patience), ``pcee`` (tau, patience), ``maxprob`` (threshold), ``fpabee`` (tau,
    patience, measure), ``fixed`` (layer), and the score-based ``calm``,
    ``consistentee`` and ``jei`` (threshold, with ``scores`` [N, L]). If no layer
    fires, the last layer answers.
    """
    return first_firing_layer(firing_mask(probs, rule, scores=scores, **params))


def predictions_at(probs: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """Predicted class of each example at its (1-based) layer: [N, L, C], [N] -> int [N]."""
    probs = _check_probs(probs)
    layers = np.asarray(layers, dtype=np.int64)
    return probs[np.arange(probs.shape[0]), layers - 1].argmax(axis=-1)


def memorized_layers(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Memorized layer of each example: [N, L, C], [N] -> int [N].

    The earliest 1-based layer m from which every exit (m, m+1, ..., L) predicts the
    gold label; ``L + 1`` when the last exit is wrong (never memorized).
    """
    probs = np.asarray(probs)
    correct = probs.argmax(axis=-1) == np.asarray(labels, dtype=np.int64)[:, None]
    trailing_correct = np.cumprod(correct[:, ::-1], axis=1).sum(axis=1)
    return (probs.shape[1] + 1 - trailing_correct).astype(np.int64)
