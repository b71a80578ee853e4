import json
import math

import numpy as np
import pytest
import torch

from epee_demo.rules import learned_scorers
from epee_demo.training import learned_exits as le
from epee_demo.rules import catalogue
from epee_demo.data import LabelledDataset, Split
from epee_demo.model import folder as model_folder
from epee_demo.errors import CheckpointError
from epee_demo.model.folder import save_checkpoint
from epee_demo.model.multi_exit import MultiExitClassifier, ModelSpec, build_model
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.joint import per_layer_accuracy, rule_summary

TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
             "intermediate_size": 64, "vocab_size": 100}


def one_hot_probs(predictions, num_classes=3, confidence=0.8):
    """[N, L] predicted classes -> [N, L, C] distributions putting ``confidence`` on the prediction."""
    predictions = np.asarray(predictions)
    probs = np.full(predictions.shape + (num_classes,), (1 - confidence) / (num_classes - 1))
    np.put_along_axis(probs, predictions[..., None], confidence, axis=-1)
    return probs


# ---------------------------------------------------------------- features and targets


def test_exit_cross_entropy_reads_the_gold_class():
    probs = np.array([[[0.5, 0.5], [0.9, 0.1]]])
    np.testing.assert_allclose(le.exit_cross_entropy(probs, np.array([1])), [[math.log(2), -math.log(0.1)]])


def test_target_exit_layers_on_a_hand_worked_table():
    ce = np.array([[2.0, 0.1, 0.05], [0.5, 0.5, 0.5], [1.0, 0.9, 0.0]])
    # lambda 0.3, L 3: costs (2.1, 0.3, 0.35), (0.6, 0.7, 0.8), (1.1, 1.1, 0.3)
    np.testing.assert_array_equal(le.target_exit_layers(ce, 0.3), [2, 1, 3])
    np.testing.assert_array_equal(le.target_exit_layers(ce, 0.0), [3, 1, 3])  # ties go to the earlier layer
    np.testing.assert_array_equal(le.gate_targets(np.array([2, 1, 3]), 3),
                                  [[0, 1, 1], [1, 1, 1], [0, 0, 1]])


def test_memorized_layers_on_hand_worked_predictions():
    predictions = np.array([
        [0, 0, 0],  # right everywhere -> 1
        [1, 0, 0],  # right from layer 2 -> 2
        [0, 1, 0],  # right at 1 and 3, wrong at 2 -> 3
        [0, 0, 1],  # last exit wrong -> never (L + 1)
        [2, 2, 2],  # wrong everywhere -> never
    ])
    memorized = catalogue.memorized_layers(one_hot_probs(predictions), np.zeros(5, dtype=int))
    np.testing.assert_array_equal(memorized, [1, 2, 3, 4, 4])
    np.testing.assert_allclose(le.depth_penalty_factors(memorized, 3), [2 / 3, 1 / 3, 0, 0, 0])


def test_choose_setting_takes_the_fastest_within_tolerance_else_the_most_accurate():
    sweep = [{"accuracy": 0.90, "average_exit_layer": 5.0},
             {"accuracy": 0.895, "average_exit_layer": 3.0},
             {"accuracy": 0.80, "average_exit_layer": 1.0}]
    assert le.choose_setting(sweep, 0.90, 0.01) == 1
    assert le.choose_setting(sweep, 0.95, 0.01) == 0


def test_choose_setting_reads_the_named_metric():
    sweep = [{"accuracy": 0.90, "micro_f1_positive": 0.60, "average_exit_layer": 5.0},
             {"accuracy": 0.895, "micro_f1_positive": 0.50, "average_exit_layer": 3.0}]
    assert le.choose_setting(sweep, 0.90, 0.01) == 1  # within a point of accuracy
    assert le.choose_setting(sweep, 0.60, 0.01, "micro_f1_positive") == 0  # ten points of F1 lost


def test_held_out_summary_scores_the_task_metric():
    """Negatives right, positives wrong: accuracy is high, micro-F1 over the positive classes is 0."""
    labels = np.array([0] * 8 + [1, 2])
    probs = one_hot_probs(np.zeros((10, 2), dtype=int))
    row = le._greedy_summary("consistentee", np.ones((10, 2)), probs, labels, 0.5, "micro_f1_positive")
    assert row == {"accuracy": 0.8, "micro_f1_positive": 0.0, "average_exit_layer": 1.0}


def test_selection_by_the_task_metric_keeps_the_layers_that_find_the_positives():
    """Exiting at layer 1 loses only the rare positives: within a point of accuracy, so accuracy picks
    the fastest setting; micro-F1 over the positive classes refuses it."""
    n, rng = 600, np.random.default_rng(0)
    labels = (rng.random(n) < 0.05).astype(np.int64)
    predictions = np.zeros((n, 4), dtype=np.int64)
    predictions[:, -1] = labels
    data = le.ExitFeatures(rng.normal(size=(n, 4, 8)).astype(np.float32),
                           one_hot_probs(predictions, num_classes=2, confidence=0.95).astype(np.float32), labels)
    config = le.ExitTrainConfig(alphas=(0.05, 5.0), lambdas=(0.1,), epochs=6, batch_size=64, learning_rate=1e-2,
                                tolerance=0.1)
    by_accuracy = le.train_learned_exits(data, config, progress=False)
    by_f1 = le.train_learned_exits(data, config, progress=False, metric="micro_f1_positive")
    assert by_accuracy.alpha == 5.0 and by_f1.alpha == 0.05
    assert by_f1.sweep["metric"] == "micro_f1_positive" and by_f1.sweep["held_out_last_exit_micro_f1_positive"] == 1.0


# ---------------------------------------------------------------- REINFORCE


def test_sampled_episodes_follow_a_sure_policy():
    logits = torch.tensor([[-30.0, 30.0, -30.0], [-30.0, -30.0, -30.0]])
    exits, log_prob = le.sample_exit_episodes(logits)
    np.testing.assert_array_equal(exits.numpy(), [1, 2])  # 0-based; the last layer always exits
    np.testing.assert_allclose(log_prob.numpy(), [0.0, 0.0], atol=1e-6)


def test_episode_log_probability_sums_continue_and_exit_terms():
    logits = torch.zeros(4000, 3)  # every decision a fair coin
    exits, log_prob = le.sample_exit_episodes(logits, torch.Generator().manual_seed(0))
    expected = {0: math.log(0.5), 1: 2 * math.log(0.5), 2: 2 * math.log(0.5)}  # no decision at layer L
    for layer, value in expected.items():
        np.testing.assert_allclose(log_prob[exits == layer].numpy(), value, rtol=1e-6)
    shares = np.bincount(exits.numpy(), minlength=3) / len(exits)
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=0.03)


def test_consistentee_rewards_by_hand():
    ce = torch.tensor([[1.0, 0.5, 0.1], [2.0, 0.2, 0.0]])
    rewards = le.consistentee_rewards(torch.tensor([0, 2]), ce, torch.tensor([0.5, 0.0]), alpha=0.2)
    np.testing.assert_allclose(rewards.numpy(), [-1.0 - 0.2 * 1 * 0.5, -0.0], atol=1e-6)


def synthetic_features(exit_early: bool, n=512, layers=4, width=8, seed=0) -> le.ExitFeatures:
    """Examples right at every layer (exiting at layer 1 is best), or wrong until the last layer."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    predictions = np.zeros((n, layers), dtype=np.int64)
    if not exit_early:
        predictions[:, :-1] = 1
    return le.ExitFeatures(rng.normal(size=(n, layers, width)).astype(np.float32),
                           one_hot_probs(predictions, confidence=0.95).astype(np.float32), labels)


def test_reinforce_steps_raise_the_exit_probability_where_exiting_early_is_right():
    data = synthetic_features(exit_early=True)
    policy = learned_scorers.LayerwiseMLP(data.num_layers, data.pooled.shape[2], 16)
    pooled = torch.from_numpy(data.pooled)
    ce = torch.from_numpy(le.exit_cross_entropy(data.probs, data.labels).astype(np.float32))
    factor = torch.from_numpy(le.depth_penalty_factors(
        catalogue.memorized_layers(data.probs, data.labels), data.num_layers).astype(np.float32))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    before = torch.sigmoid(policy(pooled))[:, 0].mean().item()
    rewards = []
    for _ in range(30):
        loss, reward = le.reinforce_loss(policy(pooled), ce, factor, alpha=0.5, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rewards.append(reward.mean().item())
    after = torch.sigmoid(policy(pooled))[:, 0].mean().item()
    assert after > before + 0.2
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5])


@pytest.mark.parametrize("exit_early, expected_layer", [(True, 1), (False, 4)])
def test_trained_policy_exits_where_the_reward_says(exit_early, expected_layer):
    data = synthetic_features(exit_early)
    config = le.ExitTrainConfig(epochs=8, batch_size=64, learning_rate=1e-2)
    policy, summary = le.train_consistentee(data, data, alpha=0.5, config=config)
    assert summary["average_exit_layer"] == pytest.approx(expected_layer, abs=0.1)
    assert summary["accuracy"] == 1.0


def test_jei_gate_learns_the_target_exit():
    data = synthetic_features(exit_early=False)  # CE is high until the last layer: l* = L
    gate, summary = le.train_jei(data, data, lam=0.1, config=le.ExitTrainConfig(epochs=10, batch_size=64))
    assert summary["average_exit_layer"] == pytest.approx(4, abs=0.1)
    assert summary["held_out_bce"] < 0.1


# ---------------------------------------------------------------- files, scorers, the whole run


class WordIdPreprocessor:
    """Texts -> BERT inputs, one id per word (a stand-in tokenizer for the tiny model)."""

    def __call__(self, texts):
        ids = [[1 + sum(map(ord, word)) % 98 for word in text.split()][:12] or [1] for text in texts]
        width = max(map(len, ids))
        input_ids = torch.zeros(len(ids), width, dtype=torch.long)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for row, sequence in enumerate(ids):
            input_ids[row, :len(sequence)] = torch.tensor(sequence)
            mask[row, :len(sequence)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}


def tiny_split(n, seed):
    rng = np.random.default_rng(seed)
    words = ["heart", "lung", "skin", "bone", "eye", "ear", "blood", "kidney"]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(n)]
    return Split(texts, [int("heart" in t) for t in texts])


@pytest.fixture(scope="module")
def shipped_tiny(tmp_path_factory):
    """A tiny random model folder after a whole ``train_and_ship_exits`` run."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    spec = ModelSpec(modality="text", base=dict(TINY_BERT), label_names=["other", "cardio"], preprocess={})
    model = build_model(spec).eval()
    save_checkpoint(model, spec, folder)
    classifier = MultiExitClassifier(model, spec, WordIdPreprocessor())
    dataset = LabelledDataset("tiny", spec.label_names, tiny_split(96, 1), tiny_split(40, 2), tiny_split(30, 3),
                              "random words", "none")
    config = le.ExitTrainConfig(alphas=(0.05, 0.2), lambdas=(0.1,), epochs=3, batch_size=32)
    cache = folder / "cache"
    stale = {"split_sizes": {"train": 96, "val": 40, "test": 30}, "history": ["kept"],
             "test_accuracy_per_layer": [0.0] * 3, "val_accuracy_per_layer": [0.0] * 3,
             "test_epee_default": {"accuracy": 0.0, "average_exit_layer": 0.0, "speedup": 0.0}}
    (folder / "metrics.json").write_text(json.dumps(stale))
    summary = le.train_and_ship_exits(classifier, dataset, folder, config, cache_dir=cache, progress=False,
                                      card_notes="tiny notes")
    return folder, classifier, dataset, summary, cache


def test_train_and_ship_writes_policies_traces_and_summary(shipped_tiny):
    folder, classifier, dataset, summary, cache = shipped_tiny
    description = json.loads((folder / "learned_exits.json").read_text())
    assert description["consistentee"]["alpha"] in (0.05, 0.2)
    assert description["jei"]["lambda"] == 0.1
    assert len(description["selection_sweep"]["consistentee"]) == 2
    assert description["selection_sweep"]["held_out_examples"] == 14  # 15 % of 96 training examples
    assert [row["rule"] for row in summary["test"]] == ["fixed", "consistentee", "jei"]
    # only the training split's features are cached: the validation split is not used to train or choose
    assert [p.name.split("_")[1:3] for p in cache.iterdir()] == [["train", "96"]]
    for split in ("val", "test"):
        trace = ExitTrace.load(folder / f"trace_{split}.npz")
        assert trace.num_examples == len(dataset.split(split))
        for rule in le.LEARNED_RULES:
            scores = trace.exit_scores[rule]
            assert scores.shape == (trace.num_examples, 3)
            assert np.all((scores >= 0) & (scores <= 1))
            assert catalogue.exit_layers(trace.probs, rule, scores=trace.scores_for(rule), threshold=0.5).shape == (trace.num_examples,)


def test_train_and_ship_rewrites_the_figures_read_off_the_traces(shipped_tiny):
    folder, classifier, dataset, _, _ = shipped_tiny
    metrics = json.loads((folder / "metrics.json").read_text())
    test = ExitTrace.load(folder / "trace_test.npz")
    assert metrics["history"] == ["kept"]  # the training record stays
    assert metrics["test_accuracy_per_layer"] == pytest.approx(per_layer_accuracy(test))
    assert metrics["val_accuracy_per_layer"] == pytest.approx(per_layer_accuracy(ExitTrace.load(folder / "trace_val.npz")))
    assert metrics["test_epee_default"] == rule_summary(test, "epee", tau=0.2, patience=3)
    card = (folder / "README.md").read_text()
    assert f"accuracy {metrics['test_epee_default']['accuracy']:.3f}" in card and "tiny notes" in card
    assert "saved fraction" in card


def test_trace_scores_match_the_scorers_on_cached_features(shipped_tiny):
    folder, classifier, dataset, _, _ = shipped_tiny
    features = le.collect_exit_features(classifier, dataset.val.inputs, dataset.val.labels)
    scorers = model_folder.load_learned_exits(folder, classifier.model)
    trace = ExitTrace.load(folder / "trace_val.npz")
    pooled, probs = torch.from_numpy(features.pooled), torch.from_numpy(features.probs)
    for rule in le.LEARNED_RULES:
        np.testing.assert_allclose(trace.exit_scores[rule], scorers[rule](pooled, probs).numpy(), atol=2e-3)


def test_scorers_on_a_prefix_equal_the_first_columns(shipped_tiny):
    folder, classifier, dataset, _, _ = shipped_tiny
    scorers = model_folder.load_learned_exits(folder, classifier.model)
    assert sorted(scorers) == ["consistentee", "jei"]
    features = le.collect_exit_features(classifier, dataset.test.inputs[:8], dataset.test.labels[:8])
    pooled, probs = torch.from_numpy(features.pooled), torch.from_numpy(features.probs)
    for rule, scorer in scorers.items():
        full = scorer(pooled, probs)
        assert full.shape == (8, 3)
        for layers in range(1, 4):
            torch.testing.assert_close(scorer(pooled[:, :layers], probs[:, :layers]), full[:, :layers])
        for layer in range(3):  # one layer at a time, as real early exit calls them
            one = scorer(pooled[:, layer:layer + 1], probs[:, layer:layer + 1], first_layer=layer)
            torch.testing.assert_close(one, full[:, layer:layer + 1])
        with pytest.raises(ValueError, match="expected features"):
            scorer(pooled[:, :2], probs[:, :2], first_layer=2)


def test_load_scorers_refuses_a_model_of_another_shape(shipped_tiny):
    folder = shipped_tiny[0]
    deeper = build_model(ModelSpec("text", {**TINY_BERT, "num_hidden_layers": 4}, ["a", "b"], {}))
    with pytest.raises(CheckpointError, match="do not fit the model"):
        model_folder.load_learned_exits(folder, deeper)


def test_load_scorers_names_a_corrupt_file(shipped_tiny, tmp_path):
    folder, classifier = shipped_tiny[0], shipped_tiny[1]
    (tmp_path / "learned_exits.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "learned_exits.json").write_text((folder / "learned_exits.json").read_text())
    with pytest.raises(CheckpointError, match="corrupt"):
        model_folder.load_learned_exits(tmp_path, classifier.model)


@pytest.mark.slow
def test_shipped_traces_carry_the_shipped_scorers():
    from epee_demo.model.registry import shipped_models

    models = shipped_models()
    if "organ-system" not in models:
        pytest.skip("no shipped organ-system model")
    shipped = models["organ-system"]
    assert sorted(shipped.classifier.exit_scorers) == ["consistentee", "jei"]
    test = shipped.task.load_dataset().test
    fresh = shipped.classifier.trace(test.inputs[:16], test.labels[:16])
    stored = shipped.trace("test").subset(np.arange(16))
    np.testing.assert_array_equal(fresh.labels, stored.labels)
    for rule in le.LEARNED_RULES:
        np.testing.assert_allclose(fresh.exit_scores[rule], stored.exit_scores[rule], atol=5e-3)


def test_selection_split_is_seeded_disjoint_and_complete():
    rng = np.random.default_rng(0)
    features = le.ExitFeatures(rng.normal(size=(40, 3, 5)).astype(np.float32),
                               rng.dirichlet(np.ones(2), size=(40, 3)).astype(np.float32), np.arange(40))
    fit, held_out = le.split_for_selection(features, 0.25, seed=7)
    assert len(held_out) == 10 and len(fit) == 30
    assert sorted(np.concatenate([fit.labels, held_out.labels]).tolist()) == list(range(40))
    np.testing.assert_array_equal(held_out.pooled, features.pooled[held_out.labels])
    again, _ = le.split_for_selection(features, 0.25, seed=7)
    np.testing.assert_array_equal(again.labels, fit.labels)
    with pytest.raises(ValueError, match="at least 2 training examples"):
        le.split_for_selection(le.ExitFeatures(features.pooled[:1], features.probs[:1], features.labels[:1]), 0.2, 0)
    with pytest.raises(ValueError, match="selection_fraction"):
        le.split_for_selection(features, 1.0, 0)


def test_cached_features_are_not_reused_for_other_labels(shipped_tiny, tmp_path):
    folder, classifier, dataset, _, _ = shipped_tiny
    first = le.cached_exit_features(classifier, folder, "train", dataset.train, tmp_path)
    relabelled = Split(dataset.train.inputs, [1 - y for y in dataset.train.labels])
    second = le.cached_exit_features(classifier, folder, "train", relabelled, tmp_path)
    np.testing.assert_array_equal(second.labels, 1 - first.labels)
    assert len(list(tmp_path.iterdir())) == 2
