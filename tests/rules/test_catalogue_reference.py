"""Every exit rule against a plain per-example loop written from its authors' code.

The reference functions below are transcribed, one example and one layer at a time, from
the semantics of the original implementations (PABEE's ``BertModel.forward`` patience loop,
DeeBERT's entropy test, dynn's WEIGHTED gate evaluation, ConsistentEE's policy test, CALM's
state saturation, the F-PABEE and PCEE-BERT definitions), not from the vectorized code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from epee_demo.rules import catalogue
from epee_demo.analysis import whole_split
from epee_demo.trace.exit_trace import ExitTrace

ASSETS = Path(__file__).resolve().parents[2] / "assets"


# ------------------------------------------------------------------ the reference loops


def first_argmax(row) -> int:
    best = 0
    for c in range(len(row)):
        if row[c] > row[best]:
            best = c
    return best


def entropy_nats(row) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


def kl_exact(p, q) -> float:
    total = 0.0
    for a, b in zip(p, q):
        if a > 0:
            if b == 0:
                return math.inf
            total += a * (math.log(a) - math.log(b))
    return max(total, 0.0)


def divergence_exact(p, q, measure) -> float:
    if measure == "kl":
        return kl_exact(p, q)
    if measure == "reverse_kl":
        return kl_exact(q, p)
    if measure == "symmetric_kl":
        return kl_exact(p, q) + kl_exact(q, p)
    m = [(a + b) / 2 for a, b in zip(p, q)]
    return min(max(0.5 * kl_exact(p, m) + 0.5 * kl_exact(q, m), 0.0), math.log(2))


def reference_exit(rule: str, probs, scores, params) -> tuple[int, list]:
    """(1-based exit layer, answered distribution) of ONE example: probs [L][C], scores [L]."""
    probs = [[float(x) / float(sum(row)) for x in row] for row in probs]
    num_layers, num_classes = len(probs), len(probs[0])
    last = (num_layers, probs[-1])
    if rule in ("patience", "epee", "pcee", "fpabee") and params["patience"] == 0:
        return last  # "use all layers for inference"
    counter, previous = 0, None
    run = []  # PCEE: the distributions of the current confident run
    stay, gate_sum = 1.0, 0.0  # JEI-DNN
    for i in range(num_layers):
        row = probs[i]
        fires = False
        if rule == "fixed":
            fires = i + 1 == params["layer"]
        elif rule == "entropy":  # DeeBERT compares raw entropy in nats
            fires = entropy_nats(row) < params["tau"] * math.log(num_classes)
        elif rule == "maxprob":
            fires = max(row) >= params["threshold"]
        elif rule in ("patience", "epee"):
            label = first_argmax(row)
            counter = counter + 1 if previous is not None and label == previous else 0
            previous = label
            fires = counter == params["patience"]
            if rule == "epee":
                fires = fires or entropy_nats(row) / math.log(num_classes) < params["tau"]
        elif rule == "pcee":
            if entropy_nats(row) / math.log(num_classes) < params["tau"]:
                counter, run = counter + 1, run + [row]
            else:
                counter, run = 0, []
            if counter == params["patience"]:
                return i + 1, [sum(r[c] for r in run) / len(run) for c in range(num_classes)]
        elif rule == "fpabee":
            if previous is not None:
                stable = divergence_exact(previous, row, params["measure"]) < params["tau"]
                counter = counter + 1 if stable else 0
            previous = row
            fires = counter == params["patience"]
        elif rule == "calm":
            confidence = 0.0 if i == 0 else float(scores[i])  # previous state is missing
            fires = confidence >= params["threshold"]
        elif rule == "consistentee":
            fires = float(scores[i]) > params["threshold"]
        elif rule == "jei":
            g = float(scores[i])
            p_exit = max(0.0, min(g, 1.0 - gate_sum))
            a = math.inf if stay == 0 and p_exit > 0 else (math.nan if stay == 0 else p_exit / stay)
            a = a if math.isnan(a) else min(max(a, 0.0), 1.0)
            gate_sum += g
            stay *= 1.0 - a
            fires = a >= params["threshold"]
        if fires and i < num_layers - 1:
            return i + 1, row
    return last


def reference_exits(rule, probs, scores, params):
    results = [reference_exit(rule, probs[n], None if scores is None else scores[n], params)
               for n in range(len(probs))]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


# ------------------------------------------------------------------ traces with ties and zeros


def awkward_trace(n=60, layers=5, classes=4, seed=0):
    """Random distributions with exact zeros, tied classes, repeated layers, and scores on the
    grid values (0, 0.5, 1) as well as off them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, layers, classes)) * rng.uniform(0.2, 4.0, size=(n, layers, 1))
    probs = np.exp(logits)
    probs[rng.uniform(size=probs.shape) < 0.15] = 0.0
    probs[:, :, 0] += (probs.sum(-1) == 0)
    tie = rng.uniform(size=(n, layers)) < 0.1
    probs[tie, 1] = probs[tie].max(-1)
    repeat = rng.uniform(size=(n, layers)) < 0.2
    repeat[:, 0] = False
    for i in range(1, layers):
        probs[repeat[:, i], i] = probs[repeat[:, i], i - 1]
    probs /= probs.sum(-1, keepdims=True)
    scores = rng.uniform(size=(n, layers))
    on_grid = rng.uniform(size=(n, layers)) < 0.3
    scores[on_grid] = rng.choice([0.0, 0.5, 1.0, 0.95], size=on_grid.sum())
    cosine = rng.uniform(-0.2, 1.0, size=(n, layers))
    cosine[:, 0] = np.nan
    return ExitTrace(probs, tuple("abcd"[:classes]), rng.integers(0, classes, n), cosine,
                     {"consistentee": scores, "jei": scores[:, ::-1].copy()})


def settings_of(rule: str, num_layers: int) -> list[dict]:
    """Ordinary settings and the ends of every range."""
    values = {
        "tau": [0.0, 1e-4, 0.2, 0.5, 1.0], "patience": [0, 1, 2, num_layers],
        "threshold": [0.0, 0.5, 0.95, 1.0], "layer": [1, num_layers], "measure": list(catalogue.DIVERGENCES),
    }
    if rule == "fpabee":
        values["tau"] = [0.0, 1e-3, 0.05, 0.7, 100.0]
    spec = catalogue.RULES[rule]
    settings = [{}]
    for name in spec.params:
        settings = [{**s, name: v} for s in settings for v in values[name]]
    return settings


def check_against_reference(trace: ExitTrace, rule: str, settings: list[dict]) -> None:
    scores = trace.scores_for(rule)
    prep = whole_split.prepare(trace)
    for params in settings:
        expected_exits, expected_answers = reference_exits(rule, trace.probs.astype(np.float64), scores, params)
        exits, answers = catalogue.exit_answers(trace.probs, rule, scores=scores, **params)
        np.testing.assert_array_equal(exits, expected_exits, err_msg=f"{rule} {params}")
        np.testing.assert_allclose(answers, expected_answers, rtol=1e-9, atol=1e-12, err_msg=f"{rule} {params}")
        view = whole_split.evaluate_setting(prep, rule, **params)
        np.testing.assert_array_equal(view.exits, expected_exits, err_msg=f"trade-off {rule} {params}")
        np.testing.assert_array_equal(view.answers, expected_answers.argmax(-1), err_msg=f"trade-off {rule} {params}")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("rule", list(catalogue.RULES))
def test_every_rule_matches_its_reference_loop_on_awkward_traces(rule, seed):
    trace = awkward_trace(seed=seed)
    check_against_reference(trace, rule, settings_of(rule, trace.num_layers))


@pytest.mark.parametrize("rule", list(catalogue.RULES))
def test_every_frontier_setting_matches_the_reference_loop(rule):
    """The trade-off grid, evaluated with the settings on a leading axis, example by example."""
    trace = awkward_trace(n=25, layers=4, seed=3)
    prep = whole_split.prepare(trace)
    grid = whole_split.parameter_grid(prep, rule)
    exits, answers = whole_split._grid_exits(prep, rule, grid)
    scores = trace.scores_for(rule)
    for index in range(0, len(grid), max(1, len(grid) // 80) | 1):
        expected_exits, expected_answers = reference_exits(rule, trace.probs.astype(np.float64), scores, grid[index])
        np.testing.assert_array_equal(exits[index], expected_exits, err_msg=f"{rule} {grid[index]}")
        np.testing.assert_array_equal(answers[index], expected_answers.argmax(-1), err_msg=f"{rule} {grid[index]}")


@pytest.mark.parametrize("model", ["organ-system", "pneumonia"])
def test_every_rule_matches_its_reference_loop_on_the_shipped_traces(model):
    trace = ExitTrace.load(ASSETS / model / "trace_test.npz").subset(slice(0, 150))
    for rule in trace.available_rules():
        settings = settings_of(rule, trace.num_layers)
        check_against_reference(trace, rule, settings[:: max(1, len(settings) // 12)] + [settings[-1]])


# ------------------------------------------------------------------ hand-worked cases


def flat(num_examples=1, layers=4, classes=3):
    return np.full((num_examples, layers, classes), 1.0 / classes)


def test_jei_exits_on_the_sequential_activation_not_the_raw_gate():
    gate = np.array([[0.4, 0.45, 0.9, 0.9],  # a = 0.4, 0.45 / 0.6 = 0.75: exits at 2 (the raw gate: at 3)
                     [0.3, 0.3, 0.6, 0.9]])  # a = 0.3, 0.3 / 0.7, then p = min(0.6, 0.4) = 0.4, a = 0.4 / 0.4 = 1
    probs = flat(2)
    assert catalogue.exit_layers(probs, "jei", scores=gate, threshold=0.5).tolist() == [2, 3]
    # at 0.95: layer 3 has p = min(0.9, 1 - 0.85) = 0.15 of a remaining 0.6 * 0.25 = 0.15, so a = 1
    assert catalogue.exit_layers(probs, "jei", scores=gate, threshold=0.95).tolist() == [3, 3]
    shown = catalogue.rule_values(probs, "jei", scores=gate)
    np.testing.assert_allclose(shown[1, :3], [0.3, 0.3 / 0.7, 1.0])


def test_patience_zero_runs_every_layer():
    confident = np.tile(np.array([0.98, 0.01, 0.01]), (2, 5, 1))  # the same confident answer everywhere
    for rule in ("patience", "epee", "pcee", "fpabee"):
        extra = {"tau": 1.0} if rule in ("epee", "pcee") else {"tau": 0.7} if rule == "fpabee" else {}
        assert catalogue.exit_layers(confident, rule, patience=0, **extra).tolist() == [5, 5], rule
        assert catalogue.exit_layers(confident, rule, patience=1, **extra)[0] < 5, rule


def test_consistentee_needs_a_score_strictly_above_the_threshold():
    scores = np.array([[0.5, 1.0, 1.0, 1.0]])
    assert catalogue.exit_layers(flat(), "consistentee", scores=scores, threshold=0.5)[0] == 2
    assert catalogue.exit_layers(flat(), "consistentee", scores=scores, threshold=1.0)[0] == 4


def test_calm_gives_layer_one_a_confidence_of_zero():
    cosine = np.array([[np.nan, 0.5, 0.5, 0.5]])
    assert catalogue.exit_layers(flat(), "calm", scores=cosine, threshold=0.0)[0] == 1
    assert catalogue.exit_layers(flat(), "calm", scores=cosine, threshold=-0.5)[0] == 1
    assert catalogue.exit_layers(flat(), "calm", scores=cosine, threshold=1e-9)[0] == 2


def test_kl_is_infinite_where_the_earlier_layer_has_mass_the_later_lacks():
    probs = np.array([[[0.5, 0.3, 0.2], [0.6, 0.4, 0.0], [0.6, 0.4, 0.0]]])
    assert catalogue.divergence(probs[0, 0], probs[0, 1], "kl") == math.inf
    assert catalogue.divergence(probs[0, 0], probs[0, 1], "symmetric_kl") == math.inf
    reverse = 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.3)
    assert catalogue.divergence(probs[0, 0], probs[0, 1], "reverse_kl") == pytest.approx(reverse)
    # tau 10 nats, patience 1: reverse KL is small at layer 2; KL is infinite there and 0 at layer 3
    assert catalogue.exit_layers(probs, "fpabee", tau=10.0, patience=1, measure="reverse_kl")[0] == 2
    assert catalogue.exit_layers(probs, "fpabee", tau=10.0, patience=1, measure="kl")[0] == 3


def test_divergences_never_go_negative_and_tau_zero_never_fires():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(13), size=2000)
    q = p * (1 + rng.normal(scale=1e-9, size=p.shape))
    q /= q.sum(-1, keepdims=True)
    for measure in catalogue.DIVERGENCES:
        assert catalogue.divergence(p, q, measure).min() >= 0.0
        assert catalogue.divergence(p, p, measure).max() == 0.0
    same = np.repeat(p[:50, None], 4, axis=1)
    for measure in catalogue.DIVERGENCES:
        assert (catalogue.exit_layers(same, "fpabee", tau=0.0, patience=1, measure=measure) == 4).all()


def test_exit_layers_renormalizes_what_it_is_given():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=(40, 5))
    for rule, params in (("epee", {}), ("pcee", {"tau": 0.5}), ("fpabee", {"measure": "kl"}), ("maxprob", {})):
        np.testing.assert_array_equal(catalogue.exit_layers(3.0 * probs, rule, **params),
                                      catalogue.exit_layers(probs, rule, **params))
    with pytest.raises(ValueError, match="non-negative"):
        catalogue.exit_layers(-probs, "epee")


def test_pcee_answers_with_the_mean_of_its_confident_run():
    probs = np.array([[[0.3, 0.4, 0.3], [0.9, 0.05, 0.05], [0.6, 0.39, 0.01], [0.2, 0.2, 0.6]]])
    tau = float(catalogue.normalized_entropy(probs[0, 2])) + 1e-6  # layers 2 and 3 are confident
    exits, answers = catalogue.exit_answers(probs, "pcee", tau=tau, patience=2)
    assert exits[0] == 3
    np.testing.assert_allclose(answers[0], (probs[0, 1] + probs[0, 2]) / 2)


def test_traces_are_stored_in_float32(tmp_path):
    trace = awkward_trace(n=10)
    probs = (trace.probs * np.float32(1e-30)).astype(np.float32) + np.float32(1e-40)  # tiny but not zero
    trace = ExitTrace(probs / probs.sum(-1, keepdims=True), trace.label_names, trace.labels, trace.state_cosine,
                      trace.exit_scores)
    trace.save(tmp_path / "t.npz")
    loaded = ExitTrace.load(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as data:
        assert data["probs"].dtype == np.float32 and data["exit_scores.jei"].dtype == np.float32
    np.testing.assert_array_equal(loaded.exit_scores["jei"], trace.exit_scores["jei"])
    np.testing.assert_allclose(loaded.probs, trace.probs, rtol=1e-6)


def test_a_grid_over_patience_alone_matches_the_reference_loop():
    """Settings on a leading axis for one parameter only (tau a scalar): the scan calibration runs."""
    trace = awkward_trace(n=30, layers=5, seed=4)
    prep = whole_split.prepare(trace)
    for rule in ("pcee", "epee", "fpabee"):
        path = whole_split.scan_path(prep, rule, "patience", tau=0.5)
        exits, answers = whole_split._grid_exits(prep, rule, path)
        for index, params in enumerate(path):
            expected_exits, expected_answers = reference_exits(rule, trace.probs.astype(np.float64), None, params)
            np.testing.assert_array_equal(exits[index], expected_exits, err_msg=f"{rule} {params}")
            np.testing.assert_array_equal(answers[index], expected_answers.argmax(-1), err_msg=f"{rule} {params}")
