import csv
import io
import math

import numpy as np
import pytest

from epee_demo.rules import catalogue
from epee_demo.analysis import whole_split
from epee_demo.errors import InputError
from epee_demo.trace.exit_trace import ExitTrace

# Three examples, four layers, three classes (x, y, z); rows are layers.
#   example 0 (gold x): x x x x              confident from layer 3
#   example 1 (gold y): y y z z              right early, wrong at the end (destructive overthinking)
#   example 2 (gold z): x z x z              right at layers 2 and 4
HAND_PROBS = np.array([
    [[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.9, 0.05, 0.05], [0.98, 0.01, 0.01]],
    [[0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.05, 0.05, 0.9]],
    [[0.6, 0.2, 0.2], [0.1, 0.2, 0.7], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]],
])
HAND_LABELS = [0, 1, 2]


def hand_trace(labels=HAND_LABELS) -> ExitTrace:
    return ExitTrace(HAND_PROBS, ("x", "y", "z"), labels)


def random_trace(n=400, num_layers=5, num_classes=4, seed=0) -> ExitTrace:
    """Later layers are more often right and more confident; scores for every learned rule."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_layers, num_classes))
    strength = np.linspace(0.3, 3.0, num_layers)[None, :] * rng.uniform(0.2, 1.5, (n, 1))
    logits[np.arange(n)[:, None], np.arange(num_layers)[None, :], labels[:, None]] += strength
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    cosine = np.clip(np.linspace(0.6, 0.99, num_layers)[None, :] + rng.normal(0, 0.05, (n, num_layers)), -1, 1)
    cosine[:, 0] = np.nan
    scores = {rule: rng.uniform(size=(n, num_layers)) for rule in ("consistentee", "jei")}
    return ExitTrace(probs, tuple(f"c{i}" for i in range(num_classes)), labels, cosine, scores)


# ------------------------------------------------------------------ operating points


def test_operating_point_by_hand():
    trace = hand_trace()
    point = whole_split.operating_point(trace, "maxprob", threshold=0.75)
    # exits 3, 2, 4 -> answers x, y, z: all right, although the full model gets example 1 wrong.
    np.testing.assert_array_equal(whole_split.evaluate_setting(trace, "maxprob", threshold=0.75).exits, [3, 2, 4])
    assert point.accuracy == 1.0
    assert point.full_accuracy == pytest.approx(2 / 3)
    assert point.agreement == pytest.approx(2 / 3)
    assert point.average_exit_layer == 3.0
    assert point.speedup == pytest.approx(4 / 3)
    assert point.saved_fraction == pytest.approx(0.25)
    assert point.params == {"threshold": 0.75}

    later = whole_split.operating_point(trace, "maxprob", threshold=0.85)  # exits 3, 4, 4
    assert later.accuracy == pytest.approx(2 / 3) and later.agreement == 1.0
    assert later.average_exit_layer == pytest.approx(11 / 3)

    patience = whole_split.operating_point(trace, "patience", patience=1)  # exits 2, 2, 4
    assert patience.average_exit_layer == pytest.approx(8 / 3) and patience.accuracy == 1.0

    full = whole_split.full_model_point(trace)
    assert (full.speedup, full.saved_fraction, full.agreement) == (1.0, 0.0, 1.0)
    assert full.accuracy == pytest.approx(2 / 3)


def test_operating_point_without_labels_has_no_accuracy_but_agreement():
    point = whole_split.operating_point(hand_trace(labels=None), "fixed", layer=2)
    assert math.isnan(point.accuracy) and math.isnan(point.full_accuracy)
    assert point.agreement == pytest.approx(2 / 3)  # layer 2 answers x y z, full model x z z


@pytest.mark.parametrize("rule", list(catalogue.RULES))
def test_exit_layers_match_the_policies_for_every_grid_setting(rule):
    trace = random_trace(n=120)
    prepared = whole_split.prepare(trace)
    grid = whole_split.parameter_grid(prepared, rule)
    batched, _ = whole_split._grid_exits(prepared, rule, grid)
    stride = max(1, len(grid) // 60) | 1  # odd, so every divergence measure of F-PABEE's grid comes up
    for index in range(0, len(grid), stride):
        expected = catalogue.exit_layers(trace.probs, rule, scores=trace.scores_for(rule), **grid[index])
        np.testing.assert_array_equal(batched[index], expected, err_msg=str(grid[index]))
        np.testing.assert_array_equal(whole_split.evaluate_setting(prepared, rule, **grid[index]).exits, expected)


def test_bad_settings_raise_input_errors():
    trace = hand_trace()
    with pytest.raises(InputError, match="Unknown exit rule"):
        whole_split.operating_point(trace, "nope")
    with pytest.raises(InputError, match="learned exit scores"):
        whole_split.operating_point(trace, "jei")
    with pytest.raises(InputError, match="takes no parameter"):
        whole_split.operating_point(trace, "entropy", patience=2)
    with pytest.raises(InputError, match="at least 0"):
        whole_split.operating_point(trace, "patience", patience=-1)
    with pytest.raises(InputError, match="between 1 and 4"):
        whole_split.operating_point(trace, "fixed", layer=5)
    with pytest.raises(InputError, match="divergence"):
        whole_split.operating_point(trace, "fpabee", measure="hellinger")
    with pytest.raises(InputError, match="no examples"):
        whole_split.prepare(hand_trace().subset(slice(0, 0)))


# ------------------------------------------------------------------ grids and frontiers


def test_grids_cover_every_parameter():
    trace = random_trace(n=20)
    assert {tuple(sorted(s)) for s in whole_split.parameter_grid(trace, "fpabee")} == {("measure", "patience", "tau")}
    measures = {s["measure"] for s in whole_split.parameter_grid(trace, "fpabee")}
    assert measures == set(catalogue.DIVERGENCES)
    assert [s["layer"] for s in whole_split.parameter_grid(trace, "fixed")] == [1, 2, 3, 4, 5]
    epee = whole_split.parameter_grid(trace, "epee")
    assert len(epee) == len(whole_split.ENTROPY_TAUS) * 5
    assert {"tau": 0.0, "patience": 5} in epee  # never fires: the full model
    assert set(whole_split.all_frontiers(trace)) == set(trace.available_rules())


def test_pareto_indices_by_hand():
    speedup = np.array([1.0, 2.0, 2.0, 3.0, 1.5])
    accuracy = np.array([0.9, 0.8, 0.85, 0.5, 0.9])
    # (1.5, 0.9) beats (1, 0.9); (2, 0.85) beats (2, 0.8).
    np.testing.assert_array_equal(whole_split.pareto_indices(speedup, accuracy), [4, 2, 3])


@pytest.mark.parametrize("rule", ["epee", "pcee", "fpabee", "maxprob", "patience", "calm"])
def test_frontier_is_pareto_optimal(rule):
    f = whole_split.frontier(random_trace(), rule)
    pareto = f.pareto
    assert np.all(np.diff(f.speedup[pareto]) > 0)
    assert np.all(np.diff(f.accuracy[pareto]) < 0)
    for index in range(len(f.params)):  # every setting is weakly beaten by a frontier setting
        assert np.any((f.speedup[pareto] >= f.speedup[index]) & (f.accuracy[pareto] >= f.accuracy[index]))
    for index in pareto:  # and no setting strictly beats a frontier one
        better = (f.speedup >= f.speedup[index]) & (f.accuracy >= f.accuracy[index])
        strictly = better & ((f.speedup > f.speedup[index]) | (f.accuracy > f.accuracy[index]))
        assert not strictly.any()
    point = f.point(int(pareto[0]))
    assert point == whole_split.operating_point(random_trace(), rule, **f.params[int(pareto[0])])


def test_truncation_frontier_and_best_within_loss():
    trace = hand_trace()
    fixed = whole_split.frontier(trace, "fixed")
    np.testing.assert_allclose(fixed.speedup, [4, 2, 4 / 3, 1])
    np.testing.assert_allclose(fixed.accuracy, [2 / 3, 1, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(fixed.pareto, [1, 0])
    assert whole_split.best_within_loss(fixed, 0.0) == 0  # layer 1 is as accurate as the full model
    assert whole_split.best_within_loss(fixed, -0.2) == 1  # only layer 2 beats the full model by 0.2
    assert whole_split.best_within_loss(fixed, -0.5) is None


# ------------------------------------------------------------------ views of one setting


def test_evaluate_setting_by_hand():
    view = whole_split.evaluate_setting(hand_trace(), "maxprob", threshold=0.75)  # exits 3, 2, 4
    np.testing.assert_array_equal(view.exits, [3, 2, 4])
    np.testing.assert_array_equal(view.answers, [0, 1, 2])
    np.testing.assert_array_equal(view.exit_counts, [0, 1, 1, 1])
    np.testing.assert_array_equal(view.oracle_counts, [1, 0, 1, 1])  # oracle exits 1, 3, 4
    confusion = np.zeros((3, 3), dtype=int)
    confusion[0, 0] = confusion[2, 1] = confusion[2, 2] = 1  # full z, early y for example 1
    np.testing.assert_array_equal(view.confusion, confusion)
    np.testing.assert_array_equal(view.class_accuracy.support, [1, 1, 1])
    np.testing.assert_array_equal(view.class_accuracy.early, [1, 1, 1])
    np.testing.assert_array_equal(view.class_accuracy.full, [1, 0, 1])
    assert view.vs_oracle == whole_split.OracleComparison(earlier=1, same=1, later=1, mean_difference=1 / 3)


def test_class_accuracy_of_an_absent_class_is_nan_and_needs_labels():
    trace = hand_trace(labels=[0, 0, 2])
    result = whole_split.accuracy_per_class(trace, whole_split.prepare(trace).full_predictions)
    assert np.isnan(result.early[1]) and result.support.tolist() == [2, 0, 1]
    with pytest.raises(InputError):
        whole_split.accuracy_per_class(hand_trace(labels=None), np.array([0, 0, 0]))
    assert whole_split.evaluate_setting(hand_trace(labels=None), "entropy").class_accuracy is None


# ------------------------------------------------------------------ overthinking


def test_overthinking_by_hand():
    result = whole_split.overthinking(hand_trace())
    np.testing.assert_array_equal(result.destructive, [False, True, False])
    np.testing.assert_array_equal(result.right_somewhere, [True, True, True])
    np.testing.assert_array_equal(result.right_then_wrong, [1, 2, 0, 0])
    np.testing.assert_array_equal(result.lost_at, [0, 0, 2, 0])
    np.testing.assert_array_equal(result.gained_at, [0, 1, 0, 1])
    np.testing.assert_array_equal(result.oracle_exits, [1, 3, 4])
    assert result.destructive_count == 1
    with pytest.raises(InputError):
        whole_split.overthinking(hand_trace(labels=None))


def test_oracle_exit_is_where_the_answer_stops_changing():
    predictions = np.array([[2, 2, 2], [0, 1, 1], [1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(whole_split.oracle_exits(predictions), [1, 2, 3, 3])


# ------------------------------------------------------------------ calibration


def disagreement_trace() -> ExitTrace:
    """Nine examples, three layers: the last says class 0 everywhere; layer 2 differs on one
    example, layer 1 on four."""
    predictions = np.zeros((9, 3), dtype=int)
    predictions[:1, 1] = 1
    predictions[:4, 0] = 1
    probs = np.where(np.arange(2)[None, None, :] == predictions[..., None], 0.9, 0.1)
    return ExitTrace(probs, ("a", "b"), np.zeros(9, dtype=int))


def test_crc_by_hand():
    trace = disagreement_trace()
    # Path layer 3, 2, 1: risks 0, 1/9, 4/9; adjusted 9/10 * risk + 1/10 = 0.1, 0.2, 0.5.
    result = whole_split.calibrate(trace, "fixed", 0.2)
    assert [p["layer"] for p in result.path] == [3, 2, 1]
    np.testing.assert_allclose(result.val_risk, [0, 1 / 9, 4 / 9])
    np.testing.assert_allclose(result.val_statistic, [0.1, 0.2, 0.5])
    assert result.params == {"layer": 2} and result.val.agreement == pytest.approx(8 / 9)
    assert whole_split.calibrate(trace, "fixed", 0.19).params == {"layer": 3}
    assert whole_split.calibrate(trace, "fixed", 0.5).params == {"layer": 1}
    assert whole_split.calibrate(trace, "fixed", 0.09).chosen == -1


def test_ltt_by_hand():
    trace = disagreement_trace()
    # Path layer 3, 2, 1 with 0, 1, 4 disagreements of 9; p-values P(Bin(9, 0.3) <= k).
    p_values = [0.7 ** 9, 0.7 ** 9 + 9 * 0.3 * 0.7 ** 8, sum(
        math.comb(9, j) * 0.3 ** j * 0.7 ** (9 - j) for j in range(5))]
    result = whole_split.calibrate(trace, "fixed", 0.3, method="ltt", delta=0.1)
    np.testing.assert_allclose(result.val_statistic, p_values)
    assert result.params == {"layer": 3}  # 0.040 <= 0.1 < 0.196: the test stops at layer 2
    assert whole_split.calibrate(trace, "fixed", 0.3, method="ltt", delta=0.2).params == {"layer": 2}
    assert whole_split.calibrate(trace, "fixed", 0.3, method="ltt", delta=0.03).chosen == -1


def test_binomial_cdf_edges():
    np.testing.assert_array_equal(whole_split.binomial_cdf([0, 3, 5], 5, 1.0), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(whole_split.binomial_cdf([0, 5], 5, 0.0), [1.0, 1.0])
    assert whole_split.binomial_cdf([2], 4, 0.5)[0] == pytest.approx(11 / 16)


def test_crc_uses_the_monotonized_loss():
    # Example 0 differs from the last layer at layer 2 only: along the path 3, 2, 1 its loss is
    # 0, 1, 0, and the monotonized loss 0, 1, 1 counts it at layer 1 too.
    predictions = np.zeros((4, 3), dtype=int)
    predictions[0, 1] = 1
    probs = np.where(np.arange(2)[None, None, :] == predictions[..., None], 0.9, 0.1)
    result = whole_split.calibrate(ExitTrace(probs, ("a", "b"), None), "fixed", 0.5)
    np.testing.assert_allclose(result.val_risk, [0, 0.25, 0])
    np.testing.assert_allclose(result.val_statistic, [0.2, 0.4, 0.4])
    assert result.params == {"layer": 1} and result.test is None


@pytest.mark.parametrize("method", ["crc", "ltt"])
def test_epsilon_zero_keeps_the_full_model(method):
    trace = random_trace()
    result = whole_split.calibrate(trace, "entropy", 0.0, test=random_trace(seed=1), method=method)
    assert result.chosen == -1 and result.params is None
    assert result.val.speedup == 1.0 and result.test.agreement == 1.0


@pytest.mark.parametrize("rule", ["entropy", "epee", "maxprob", "patience", "fpabee", "calm", "jei"])
def test_calibrated_setting_meets_the_bound_on_validation(rule):
    val = random_trace(n=600, seed=2)
    epsilon = 0.05
    result = whole_split.calibrate(val, rule, epsilon, test=random_trace(seed=3))
    n = val.num_examples
    if result.chosen >= 0:
        assert result.val_statistic[result.chosen] <= epsilon
        assert n / (n + 1) * (1 - result.val.agreement) + 1 / (n + 1) <= epsilon + 1e-12
        assert result.val.params == result.params and result.test.params == result.params
    if result.chosen + 1 < len(result.path):
        assert result.val_statistic[result.chosen + 1] > epsilon


def test_ltt_stops_at_the_first_p_value_above_delta():
    result = whole_split.calibrate(random_trace(n=600, seed=2), "entropy", 0.05, method="ltt", delta=0.1)
    assert np.all(result.val_statistic[: result.chosen + 1] <= 0.1)
    if result.chosen + 1 < len(result.path):
        assert result.val_statistic[result.chosen + 1] > 0.1


def test_calibration_guarantees_hold_in_simulation():
    """Draw many small calibration sets from one population: CRC's mean risk stays below
    epsilon and LTT exceeds epsilon in at most about delta of the draws."""
    population = whole_split.prepare(random_trace(n=6000, seed=4))
    rng = np.random.default_rng(5)
    epsilon, delta, draws = 0.1, 0.2, 150
    crc_risks, ltt_failures = [], 0
    for _ in range(draws):
        sample = population.trace.subset(rng.choice(6000, 150, replace=False))
        crc = whole_split.calibrate(sample, "entropy", epsilon, test=population)
        ltt = whole_split.calibrate(sample, "entropy", epsilon, test=population, method="ltt", delta=delta)
        crc_risks.append(1 - crc.test.agreement)
        ltt_failures += (1 - ltt.test.agreement) > epsilon
    assert np.mean(crc_risks) <= epsilon
    assert np.mean(crc_risks) > epsilon / 4  # it does trade accuracy for speed
    assert ltt_failures / draws <= delta + 0.05


def test_binomial_cdf_matches_the_sum_of_terms():
    n, p = 30, 0.2
    for k in (0, 3, 6, 30):
        expected = sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k + 1))
        assert whole_split.binomial_cdf(np.array([k]), n, p)[0] == pytest.approx(expected, rel=1e-9)
    assert whole_split.binomial_cdf(np.array([0, 5]), n, 0.0).tolist() == [1.0, 1.0]


def test_calibration_input_errors():
    with pytest.raises(InputError):
        whole_split.calibrate(hand_trace(), "entropy", 1.5)
    with pytest.raises(InputError):
        whole_split.calibrate(hand_trace(), "entropy", 0.1, method="bonferroni")
    with pytest.raises(InputError):
        whole_split.calibrate(hand_trace(), "fpabee", 0.1, knob="measure")


def test_scan_path_runs_from_conservative_to_aggressive():
    trace = random_trace(n=200)
    for rule in ("entropy", "maxprob", "patience", "fixed", "pcee"):
        path = whole_split.scan_path(trace, rule)
        averages = [whole_split.operating_point(trace, rule, **p).average_exit_layer for p in path]
        assert averages[0] == trace.num_layers
        assert np.all(np.diff(averages) <= 1e-12), rule
    path = whole_split.scan_path(trace, "epee", patience=2)
    assert all(p["patience"] == 2 for p in path) and path[0]["tau"] == 0.0


# ------------------------------------------------------------------ the table


def test_tradeoff_rows_and_markdown():
    val, test = random_trace(n=500, seed=6), random_trace(n=500, seed=7)
    rows = whole_split.tradeoff_rows(val, test, max_loss=0.01)
    assert [r.rule for r in rows] == val.available_rules()
    for row in rows:
        if row.oracle is not None:
            assert row.oracle.accuracy >= row.oracle.full_accuracy - 0.01 - 1e-12
            # nothing in the grid is faster within the budget on test
            f = whole_split.frontier(test, row.rule)
            ok = f.accuracy >= f.full_accuracy - 0.01 - 1e-12
            assert row.oracle.speedup == pytest.approx(f.speedup[ok].max())
        if row.honest is not None:
            assert row.honest.num_examples == test.num_examples
        assert row.calibrated.epsilon == 0.01 and row.calibrated.test.num_examples == 500
    text = whole_split.tradeoff_markdown(rows)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == len(rows) + 2
    assert all(line.count("|") == 11 for line in table)
    for rule in (r.rule for r in rows):
        assert catalogue.RULES[rule].title in text
    with pytest.raises(InputError):
        whole_split.tradeoff_rows(hand_trace(labels=None), test)


# ------------------------------------------------------------------ CSV


def test_trace_csv_by_hand(tmp_path):
    path = tmp_path / "trace.csv"
    text = whole_split.trace_csv(hand_trace(), path)
    assert path.read_text() == text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == whole_split.TRACE_CSV_HEADER
    assert len(rows) == 1 + 3 * 4
    example, layer, gold, predicted, prob, entropy, counter = rows[1 + 1 * 4 + 2]  # example 1, layer 3
    assert (example, layer, gold, predicted, counter) == ("1", "3", "y", "z", "0")
    assert float(prob) == pytest.approx(0.6)
    assert float(entropy) == pytest.approx(catalogue.normalized_entropy(HAND_PROBS[1, 2]), rel=1e-5)
    assert rows[1 + 0 * 4 + 3][6] == "3"  # example 0 agrees 3 times in a row at layer 4
    unlabelled = list(csv.reader(io.StringIO(whole_split.trace_csv(hand_trace(labels=None)))))
    assert all(row[2] == "" for row in unlabelled[1:])


def test_operating_points_csv():
    trace = hand_trace()
    text = whole_split.operating_points_csv([whole_split.operating_point(trace, "maxprob", threshold=0.75)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == whole_split.POINTS_CSV_HEADER
    assert rows[1][:2] == ["maxprob", "threshold=0.75"]
    assert float(rows[1][2]) == 1.0 and float(rows[1][7]) == pytest.approx(4 / 3, rel=1e-5)
    frontiers = whole_split.all_frontiers(trace)
    rows = list(csv.reader(io.StringIO(whole_split.operating_points_csv(frontiers))))
    assert len(rows) == 1 + sum(len(f.params) for f in frontiers.values())
    flag = whole_split.POINTS_CSV_HEADER.index("on_frontier")
    assert sum(row[flag] == "1" for row in rows[1:]) == sum(len(f.pareto) for f in frontiers.values())
    assert {row[-3] for row in rows[1:]} == {"accuracy"} and all(row[-2] == row[2] for row in rows[1:])
    unlabelled = whole_split.operating_points_csv([whole_split.full_model_point(hand_trace(labels=None))])
    assert list(csv.reader(io.StringIO(unlabelled)))[1][2] == ""


@pytest.mark.slow
def test_shipped_traces_give_frontiers_and_a_table():
    from epee_demo.model.registry import shipped_models

    models = shipped_models()
    if not models:
        pytest.skip("no shipped model in assets/")
    for model in models.values():
        val, test = whole_split.prepare(model.trace("val")), whole_split.prepare(model.trace("test"))
        frontiers = whole_split.all_frontiers(test)
        assert set(frontiers) == set(test.trace.available_rules())
        epee = frontiers["epee"]
        for index in epee.pareto[:: max(1, len(epee.pareto) // 5)]:
            expected = catalogue.exit_layers(test.trace.probs, "epee", scores=test.trace.scores_for("epee"), **epee.params[int(index)])
            np.testing.assert_array_equal(whole_split.evaluate_setting(test, "epee", **epee.params[int(index)]).exits, expected)
        assert whole_split.calibrate(val, "entropy", 0.0, test=test).test.speedup == 1.0
        rows = whole_split.tradeoff_rows(val, test, val_frontiers=whole_split.all_frontiers(val), test_frontiers=frontiers)
        assert len(rows) == len(frontiers)


def test_patience_must_be_a_whole_number_and_the_scanned_knob_is_not_checked():
    trace = random_trace(n=50)
    for rule in ("patience", "pcee", "fpabee"):
        with pytest.raises(InputError, match="whole number"):
            whole_split.operating_point(trace, rule, patience=1.5)
    # a value given for the knob being scanned is replaced by the grid, not refused
    path = whole_split.scan_path(trace, "patience", patience=0)
    assert [p["patience"] for p in path][-1] == 1


def test_both_speed_up_forms_are_labelled_in_texts_and_the_table():
    text = whole_split.speedup_text(2.0, 0.5)
    assert "2.00×" in text and "L / mean exit layer" in text and "50.0%" in text and "1 − mean exit layer / L" in text
    trace = random_trace(n=60)
    rows = whole_split.tradeoff_rows(trace, trace)
    table = whole_split.tradeoff_markdown(rows)
    assert "saved fraction" in table and "× / " in table


# ------------------------------------------------------------------ the task's own metric


def test_operating_point_scored_by_the_task_metric_by_hand():
    # maxprob 0.75 answers x, y, z (all right); the full model answers x, z, z.
    point = whole_split.operating_point(whole_split.prepare(hand_trace(), "macro_f1"), "maxprob", threshold=0.75)
    assert point.metric == "macro_f1" and point.metric_title == "macro-F1"
    assert point.score == 1.0 and point.accuracy == 1.0
    assert point.full_score == pytest.approx((1 + 0 + 2 / 3) / 3)  # F1 of x, y, z at the last layer
    relation = whole_split.full_model_point(whole_split.prepare(hand_trace(), "micro_f1_positive"))
    assert relation.score == pytest.approx(0.5) and relation.full_accuracy == pytest.approx(2 / 3)
    plain = whole_split.operating_point(hand_trace(), "maxprob", threshold=0.75)
    assert plain.metric == "accuracy" and plain.score == plain.accuracy


def test_frontier_is_scored_and_taken_on_the_task_metric():
    from epee_demo.analysis.task_metrics import macro_f1

    trace = random_trace(n=300, num_classes=4, seed=11)
    prep = whole_split.prepare(trace, "macro_f1")
    for rule in ("epee", "fixed", "fpabee"):
        f = whole_split.frontier(prep, rule)
        assert f.metric == "macro_f1"
        for index in range(0, len(f.params), 7):
            answers = whole_split.evaluate_setting(prep, rule, **f.params[index]).answers
            assert f.score[index] == pytest.approx(macro_f1(answers, trace.labels, 4))
        np.testing.assert_array_equal(f.pareto, whole_split.pareto_indices(f.speedup, f.score))
        best = whole_split.best_within_loss(f, 0.01)
        if best is not None:
            ok = f.score >= f.full_score - 0.01 - 1e-12
            assert ok[best] and f.speedup[best] == f.speedup[ok].max()
    assert f.full_score == pytest.approx(macro_f1(trace.probs[:, -1].argmax(-1), trace.labels, 4))


def test_prepare_rescores_a_prepared_trace_and_refuses_an_unknown_metric():
    prep = whole_split.prepare(hand_trace())
    assert whole_split.prepare(prep) is prep and prep.metric == "accuracy"
    assert whole_split.prepare(prep, "macro_f1").metric == "macro_f1" and prep.metric == "accuracy"
    with pytest.raises(InputError, match="Unknown metric"):
        whole_split.prepare(hand_trace(), "f2")


def test_tradeoff_markdown_names_the_task_metric():
    val, test = (whole_split.prepare(random_trace(n=200, seed=s), "micro_f1_positive") for s in (1, 2))
    text = whole_split.tradeoff_markdown(whole_split.tradeoff_rows(val, test))
    assert "micro-F1 over the positive classes" in text.splitlines()[0] and "accuracy" not in text.splitlines()[0]
