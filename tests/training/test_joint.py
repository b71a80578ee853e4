"""Training: metrics it writes (ROC AUC by hand, per exit, binary and one-vs-rest), per-exit losses,
which parameters train."""

import numpy as np
import pytest
import torch

from epee_demo.data import LabelledDataset, Split
from epee_demo.data.tasks import preprocessor_for
from epee_demo.model.multi_exit import (
    ModelSpec, MultiExitClassifier, build_model, depth_weighted, joint_exit_loss, per_exit_losses,
)
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.joint import (
    TrainConfig, auc_of, averaged_epochs, epoch_score, kept_epoch, mark_trainable, per_layer_accuracy, per_layer_auc,
    roc_auc, train_joint,
)
from tests.conftest import TokenPreprocessor, tiny_bert


def test_roc_auc_counts_ordered_pairs_and_ties_half():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.4<0.5), (0.4>0.1) -> 3/4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5, 0.5], [True, False, True]) == pytest.approx(0.5)
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert np.isnan(roc_auc([1, 2], [True, True]))


def brute_force_auc(scores, positive):
    pos, neg = np.asarray(scores)[positive], np.asarray(scores)[~np.asarray(positive)]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_roc_auc_matches_all_pairs_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 200) / 5.0
    positive = rng.random(200) < 0.3
    assert roc_auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive))


def test_per_layer_auc_binary_reads_the_second_class_and_multiclass_is_one_vs_rest_macro():
    rng = np.random.default_rng(1)
    binary = rng.dirichlet(np.ones(2), size=(30, 3))
    labels = rng.integers(0, 2, 30)
    trace = ExitTrace(binary, ("a", "b"), labels)
    assert per_layer_auc(trace) == pytest.approx([brute_force_auc(binary[:, i, 1], labels == 1) for i in range(3)])
    probs = rng.dirichlet(np.ones(4), size=(40, 2))
    labels = np.arange(40) % 4
    trace = ExitTrace(probs, ("a", "b", "c", "d"), labels)
    expected = [np.mean([brute_force_auc(probs[:, i, c], labels == c) for c in range(4)]) for i in range(2)]
    assert per_layer_auc(trace) == pytest.approx(expected, rel=1e-6)


def test_joint_loss_is_the_depth_weighted_mean_of_the_per_exit_losses():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 3, 4), torch.tensor([0, 1, 2, 3, 0])
    per_exit = per_exit_losses(logits, labels)
    assert per_exit.shape == (3,)
    torch.testing.assert_close(per_exit[1], torch.nn.functional.cross_entropy(logits[:, 1], labels))
    torch.testing.assert_close(depth_weighted(per_exit), (per_exit[0] + 2 * per_exit[1] + 3 * per_exit[2]) / 6)
    torch.testing.assert_close(joint_exit_loss(logits, labels), depth_weighted(per_exit))



def test_label_smoothing_mixes_the_target_with_the_uniform_distribution():
    torch.manual_seed(4)
    logits, labels = torch.randn(5, 3, 4), torch.tensor([0, 1, 2, 3, 0])
    smoothed = per_exit_losses(logits, labels, label_smoothing=0.1)
    log_probs = logits.log_softmax(-1)
    target = 0.9 * torch.nn.functional.one_hot(labels, 4).float() + 0.1 / 4
    expected = -(target[:, None] * log_probs).sum(-1).mean(0)
    torch.testing.assert_close(smoothed, expected)
    assert (smoothed > per_exit_losses(logits, labels)).any()

def test_with_lora_only_adapters_layernorms_and_heads_train(tmp_path, token_batches):
    tiny_bert().save_pretrained(tmp_path / "base")
    spec = ModelSpec("text", str(tmp_path / "base"), ["a", "b", "c", "d"], {"max_length": 16},
                     lora={"rank": 2, "alpha": 4, "targets": ["query", "value", "dense"]})
    model = build_model(spec)
    count = mark_trainable(model, spec)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert count == sum(p.numel() for name, p in model.named_parameters() if name in trainable)
    assert trainable == {name for name, _ in model.named_parameters()
                         if ".lora_A.default." in name or ".lora_B.default." in name
                         or "LayerNorm" in name or name.startswith("heads.")}
    assert any("lora_A" in name for name in trainable) and any(name.startswith("heads.") for name in trainable)
    joint_exit_loss(model(TokenPreprocessor()(token_batches)).logits, torch.tensor([0, 1, 2, 3, 0, 1, 2])).backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == (name in trainable), name


def test_without_lora_everything_trains():
    spec = ModelSpec("text", tiny_bert().config.to_dict(), ["a", "b"], {"max_length": 16})
    model = build_model(spec)
    assert mark_trainable(model, spec) == sum(p.numel() for p in model.parameters())


def test_fit_vocabulary_keeps_special_tokens_and_tokens_seen_often_enough():
    from epee_demo.model.backbones import DEFAULT_TEXT_BASE
    from epee_demo.training.joint import fit_vocabulary

    spec = ModelSpec("text", {"model_type": "gpt2", "n_embd": 16}, ["a", "b"],
                     {"max_length": 16, "tokenizer": DEFAULT_TEXT_BASE, "vocabulary_min_count": 2})
    fitted = fit_vocabulary(spec, ["heart failure", "heart attack", "renal failure"])
    vocabulary = fitted.preprocess["vocabulary"]
    assert {"heart", "failure", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} == set(vocabulary)
    assert vocabulary[0] == "[PAD]"  # the tokenizer's id order: padding keeps id 0
    assert fitted.base["vocab_size"] == len(vocabulary) and spec.base.get("vocab_size") is None  # a new spec
    pretrained = ModelSpec("text", DEFAULT_TEXT_BASE, ["a"], {"max_length": 16})
    assert fit_vocabulary(pretrained, ["heart"]) is pretrained


def test_start_from_checkpoint_loads_a_folders_trained_tensors_unmerged(tmp_path):
    from epee_demo.model.folder import save_checkpoint
    from epee_demo.training.joint import start_from_checkpoint

    tiny_bert().save_pretrained(tmp_path / "base")
    spec = ModelSpec("text", str(tmp_path / "base"), ["a", "b", "c"], {"max_length": 16},
                     lora={"rank": 2, "alpha": 4, "targets": ["query", "value"]})
    trained = build_model(spec)
    mark_trainable(trained, spec)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param))
    save_checkpoint(trained, spec, tmp_path / "trained")
    fresh = build_model(spec)
    count = start_from_checkpoint(fresh, tmp_path / "trained")
    assert count == sum(p.requires_grad for p in trained.parameters())
    assert any(".lora_A." in name for name, _ in fresh.named_parameters())  # still adapters, not merged
    for (name, param), (_, loaded) in zip(trained.named_parameters(), fresh.named_parameters()):
        torch.testing.assert_close(loaded, param.half().float() if param.requires_grad else param, msg=name)
    other = ModelSpec("text", str(tmp_path / "base"), ["a", "b", "c"], {"max_length": 16},
                      lora={"rank": 2, "alpha": 4, "targets": ["key"]})
    with pytest.raises(ValueError, match="does not fit this model"):
        start_from_checkpoint(build_model(other), tmp_path / "trained")
    tiny_bert(num_layers=4).save_pretrained(tmp_path / "deeper")
    deeper = ModelSpec("text", str(tmp_path / "deeper"), ["a", "b", "c"], {"max_length": 16}, lora=spec.lora)
    with pytest.raises(ValueError, match="has 3 exits and this model 4: a checkpoint of another depth"):
        start_from_checkpoint(build_model(deeper), tmp_path / "trained")


def test_a_backbone_loads_into_a_model_of_another_task_and_its_heads_stay_fresh(tmp_path):
    from epee_demo.data.tasks import _conv_vit_spec, _vit_spec
    from epee_demo.model.folder import save_checkpoint
    from epee_demo.training.joint import load_initial_weights, start_from_checkpoint

    source_spec = _conv_vit_spec(["normal", "pneumonia"], "source", layers=2)
    trained = build_model(source_spec)
    with torch.no_grad():
        for param in trained.parameters():
            param.add_(torch.randn_like(param))
    save_checkpoint(trained, source_spec, tmp_path / "source")
    target_spec = _conv_vit_spec(["a", "b", "c"], "target", layers=2)  # three classes: heads of other shapes
    with pytest.raises(ValueError, match="other shapes"):
        start_from_checkpoint(build_model(target_spec), tmp_path / "source")
    torch.manual_seed(0)
    fresh = build_model(target_spec)
    heads_before = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("heads.")}
    line = load_initial_weights(fresh, target_spec, TrainConfig(backbone_from=str(tmp_path / "source")))
    assert line.startswith(f"starting on the backbone of {tmp_path / 'source'}") and "fresh exit heads" in line
    source_state, state = trained.state_dict(), fresh.state_dict()
    for key, value in state.items():
        if key.startswith("heads."):
            assert torch.equal(value, heads_before[key]), key
        else:
            torch.testing.assert_close(value, source_state[key].half().float(), msg=key)
    with pytest.raises(ValueError, match="another architecture, reads other inputs"):
        other = _vit_spec(["a", "b"], channels=1, title="patches", layers=2)
        load_initial_weights(build_model(other), other, TrainConfig(backbone_from=str(tmp_path / "source")))
    with pytest.raises(ValueError, match="exclude each other"):
        load_initial_weights(fresh, target_spec, TrainConfig(start_from="x", backbone_from="y"))
    lora_spec = _conv_vit_spec(["a", "b"], "adapted", layers=2)
    lora_spec.lora = {"rank": 2, "alpha": 4, "targets": ["query"]}  # the same architecture with adapters
    with pytest.raises(ValueError, match="has other adapters"):
        load_initial_weights(fresh, lora_spec, TrainConfig(backbone_from=str(tmp_path / "source")))
    assert load_initial_weights(fresh, target_spec, TrainConfig()) is None


def test_the_model_card_shows_the_real_prose_figures_when_recorded():
    from epee_demo.training.joint import real_prose_section

    assert real_prose_section(None) == ""
    section = real_prose_section({
        "data": "Abstracts.", "examples": 10, "max_length": 512, "long_notes": "head-tail", "past_window": 1,
        "accuracy_per_layer": [0.5, 0.75], "last_exit_recall": {"Neoplasm": 0.25},
        "epee_default": {"accuracy": 0.7, "average_exit_layer": 1.5, "speedup": 1.3333},
    })
    assert "| accuracy | 0.500 | 0.750 |" in section and "average exit layer 1.50" in section
    assert "Neoplasm 0.250" in section and "long notes: head-tail" in section


def test_an_epoch_is_kept_by_the_last_exits_metric_or_its_mean_with_the_auc():
    record = {"val_accuracy_per_layer": [0.6, 0.8], "val_last_exit_auc": 0.9}
    assert epoch_score(record, "accuracy", "metric") == 0.8
    assert epoch_score(record, "accuracy", "metric_and_auc") == pytest.approx(0.85)
    assert epoch_score({"val_macro_f1_per_layer": [0.5, 0.7]}, "macro_f1", "metric") == 0.7
    one_class = {"val_accuracy_per_layer": [0.6, 0.8], "val_last_exit_auc": float("nan")}
    assert epoch_score(one_class, "accuracy", "metric_and_auc") == 0.8  # no AUC of one class: the metric alone


def _tiny_image_task(seed: int = 0):
    """A tiny conv-stem ViT spec and a random 2-class image dataset whose class shifts the brightness."""
    rng = np.random.default_rng(seed)

    def split(count):
        labels = rng.integers(0, 2, count)
        images = [np.clip(rng.normal(100 + 40 * y, 40, (16, 16)), 0, 255).astype(np.uint8) for y in labels]
        return Split(images, labels.tolist())

    base = {"model_type": "vit", "image_size": 16, "patch_size": 4, "num_channels": 1, "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "patch_stem": "conv",
            "stem_convs_per_stage": 2}
    spec = ModelSpec(modality="image", base=base, label_names=["a", "b"],
                     preprocess={"size": 16, "channels": 1, "mean": [0.5], "std": [0.5]})
    return spec, LabelledDataset("tiny", ["a", "b"], split(48), split(40), split(8), "random", "none")


def test_metric_and_auc_keeps_the_epoch_with_the_best_mean_of_last_exit_accuracy_and_auc():
    spec, dataset = _tiny_image_task()
    torch.manual_seed(0)
    model = build_model(spec)
    preprocessor = preprocessor_for(spec)
    config = TrainConfig(epochs=4, batch_size=16, learning_rate=3e-3, keep_epoch_by="metric_and_auc")
    history = train_joint(model, spec, preprocessor, dataset, config, device="cpu", progress=False)
    for record in history:
        assert record["epoch_score"] == pytest.approx(
            (record["val_accuracy_per_layer"][-1] + record["val_last_exit_auc"]) / 2)
    kept = MultiExitClassifier(model, spec, preprocessor).trace(dataset.val.inputs, dataset.val.labels)
    kept_score = (per_layer_accuracy(kept)[-1] + per_layer_auc(kept)[-1]) / 2
    assert kept_score == pytest.approx(max(r["epoch_score"] for r in history), abs=1e-6)
    assert len({round(r["epoch_score"], 6) for r in history}) > 1  # the epochs differ: a choice was made


def test_keep_epoch_by_must_be_known_and_metric_and_auc_reads_a_macro_auc_past_two_classes():
    spec, dataset = _tiny_image_task()
    model = build_model(spec)
    with pytest.raises(ValueError, match="keep_epoch_by must be one of"):
        train_joint(model, spec, preprocessor_for(spec), dataset, TrainConfig(epochs=1, keep_epoch_by="auc"),
                    device="cpu", progress=False)
    three = ModelSpec(modality="image", base=spec.base, label_names=["a", "b", "c"], preprocess=spec.preprocess)
    model = build_model(three)
    [record] = train_joint(model, three, preprocessor_for(three), dataset,
                           TrainConfig(epochs=1, keep_epoch_by="metric_and_auc"), device="cpu", progress=False)
    kept = MultiExitClassifier(model, three, preprocessor_for(three)).trace(dataset.val.inputs, dataset.val.labels)
    assert kept.probs.shape[-1] == 3
    assert record["val_last_exit_auc"] == pytest.approx(auc_of(kept.probs[:, -1], kept.labels), abs=1e-6)
    assert record["epoch_score"] == pytest.approx((record["val_accuracy_per_layer"][-1] + record["val_last_exit_auc"]) / 2)


def test_kept_epoch_is_the_first_best_epoch_score_or_for_an_old_history_the_best_last_exit_accuracy():
    history = [{"epoch": 1, "val_accuracy_per_layer": [0.9], "epoch_score": 0.7},
               {"epoch": 2, "val_accuracy_per_layer": [0.8], "epoch_score": 0.8},
               {"epoch": 3, "val_accuracy_per_layer": [0.8], "epoch_score": 0.8}]
    assert kept_epoch(history)["epoch"] == 2
    assert kept_epoch([{k: v for k, v in r.items() if k != "epoch_score"} for r in history])["epoch"] == 1


def test_weight_average_keeps_the_mean_of_the_weights_after_each_of_the_last_quarter_of_the_epochs(monkeypatch):
    assert [averaged_epochs(n) for n in (1, 4, 5, 40, 90)] == [1, 1, 2, 10, 23]
    snapshots = []
    update = torch.optim.swa_utils.AveragedModel.update_parameters

    def remember_then_update(self, model):
        snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})
        update(self, model)
    monkeypatch.setattr(torch.optim.swa_utils.AveragedModel, "update_parameters", remember_then_update)
    spec, dataset = _tiny_image_task()
    torch.manual_seed(0)
    model = build_model(spec)
    config = TrainConfig(epochs=5, batch_size=16, learning_rate=3e-3, keep_epoch_by="weight_average")
    history = train_joint(model, spec, preprocessor_for(spec), dataset, config, device="cpu", progress=False)
    assert len(history) == 5 and kept_epoch(history, "weight_average") is None
    assert len(snapshots) == 2  # after epochs 4 and 5
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.detach(), (snapshots[0][name] + snapshots[1][name]) / 2)
    assert any(not torch.equal(param.detach(), snapshots[1][name]) for name, param in model.named_parameters())
