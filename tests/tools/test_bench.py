import json
import math

import pytest

from epee_demo.rules import catalogue
from epee_demo.tools.bench import (
    bench_classifier, bench_targets, default_rule_settings, format_table, load_for_bench, write_json,
)
from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.model.multi_exit import MultiExitClassifier
from tests.trace.test_early_exit import NUM_LAYERS, tiny_classifier, token_inputs


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier()


@pytest.fixture(scope="module")
def result(classifier):
    inputs = token_inputs()[:6]
    return bench_classifier(classifier, inputs, [0, 1, 2, 0, 1, 2], name="tiny", batch_sizes=(2, 4), warmup=1)


def positive_finite(x):
    return math.isfinite(x) and x > 0


def test_bench_json_has_every_field(result, tmp_path):
    data = json.loads(write_json([result], tmp_path / "bench.json").read_text())
    model = data["models"][0]
    for key in ("name", "device", "dtype", "num_layers", "num_examples", "full", "all_heads",
                "embedding", "embedding_in_layers", "head_overhead_batch1", "head_overhead_batched", "rules",
                "skipped_rules"):
        assert key in model
    assert model["num_examples"] == 6 and model["num_layers"] == NUM_LAYERS
    assert {r["rule"] for r in model["rules"]} == set(catalogue.RULES)
    for timing in [model["full"], model["all_heads"], model["embedding"]] + [r["timing"] for r in model["rules"]]:
        assert set(timing["throughput"]) == {"2", "4"}
        assert 0 < timing["latency_p50_ms"] <= timing["latency_p95_ms"]
    assert data["targets"]["batch1_fraction_of_ideal"] == 0.9


def test_bench_speedups_are_positive_and_finite(result):
    for rule in result.rules:
        assert 1.0 <= rule.average_exit_layer <= NUM_LAYERS
        assert rule.ideal_speedup == pytest.approx(NUM_LAYERS / rule.average_exit_layer)
        assert positive_finite(rule.weighted_ideal_speedup)
        assert positive_finite(rule.speedup_batch1)
        assert all(positive_finite(s) for s in rule.speedup_batched.values())
        assert 0.0 <= rule.accuracy <= 1.0
        assert rule.batched_target_met is None  # a CPU run has no batched target
    assert result.rules[[r.rule for r in result.rules].index("fixed")].average_exit_layer == 1.0
    assert math.isfinite(result.head_overhead_batch1)
    assert 0 < result.embedding.latency_mean_ms < result.full.latency_mean_ms
    assert positive_finite(result.embedding_in_layers)


def test_table_names_every_rule_and_target(result):
    table = format_table([result])
    for rule in result.rules:
        assert rule.rule in table
    assert table.count("PASS") + table.count("FAIL") >= len(result.rules)
    assert "overhead" in table and "embedding alone" in table


def test_learned_rules_without_scorers_are_skipped(classifier):
    bare = MultiExitClassifier(classifier.model, classifier.spec, classifier.preprocessor)
    rules, skipped = default_rule_settings(bare)
    assert set(skipped) == {"consistentee", "jei"}
    assert "calm" in rules and rules["epee"] == catalogue.RULES["epee"].params


def test_bench_targets(tmp_path):
    (tmp_path / "organ-system").mkdir()
    (tmp_path / "organ-system" / "config.json").write_text("{}")
    [(name, folder, task)] = bench_targets([], assets=str(tmp_path))
    assert name == "organ-system" and task.name == "organ-system"
    [(name, folder, task)] = bench_targets([str(tmp_path / "mine")], task="organ-system")
    assert name == "mine" and task.name == "organ-system"
    with pytest.raises(ValueError, match="--task"):
        bench_targets([str(tmp_path / "mine")])


def test_bench_loads_a_checkpoint_folder_and_times_texts(tiny_shipped_model):
    classifier = load_for_bench(tiny_shipped_model.folder, "cpu", "float32")
    texts = [note.text for note in EXAMPLE_NOTES][:4]
    result = bench_classifier(classifier, texts, name="organ-system", rules={"epee": {}, "fixed": {"layer": 2}},
                              batch_sizes=(3,), warmup=1)
    assert [r.rule for r in result.rules] == ["epee", "fixed"]
    assert result.rules[1].average_exit_layer == 2.0 and result.rules[0].accuracy is None
    assert result.dtype == "float32" and result.full.throughput[3] > 0
