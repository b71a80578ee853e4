"""scripts/cross_validate_recipe.py: the stratified folds and the pooled summary."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cross_validate_recipe.py"
spec = importlib.util.spec_from_file_location("cross_validate_recipe", SCRIPT)
cross_validate_recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cross_validate_recipe)


def test_folds_are_disjoint_cover_every_example_and_keep_the_class_balance():
    labels = [0] * 14 + [1] * 6
    folds = cross_validate_recipe.stratified_folds(labels, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    assert [int(np.sum(np.asarray(labels)[f] == 1)) for f in folds] == [2, 2, 2]
    assert [len(f) for f in folds] == [7, 7, 6]
    again = cross_validate_recipe.stratified_folds(labels, 3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, cross_validate_recipe.stratified_folds(labels, 3, 1)))


def test_a_class_smaller_than_the_folds_is_refused():
    with pytest.raises(SystemExit, match=r"fewer examples than 3 folds: \{1: 2\}"):
        cross_validate_recipe.stratified_folds([0, 0, 0, 1, 1], 3, seed=0)


def test_merge_takes_disjoint_folds_of_one_setting_only():
    def run(fold, seed=13):
        return {"task": "breast", "folds": 2, "fold_seed": 0, "train_config": {"seed": seed}, "spec_args": {},
                "fold_results": {str(fold): {"score": 0.5, "accuracy_per_layer": [0.5], "auc_per_layer": [0.5],
                                             "last_exit_probs": [[0.123456, 0.876544]], "labels": [1]}}}
    result = cross_validate_recipe.merged([run(1), run(0)])
    assert list(result["fold_results"]) == [0, 1] and result["summary"]["folds"] == [0, 1]
    assert result["fold_results"][0]["last_exit_probs"] == [[0.1235, 0.8765]]
    with pytest.raises(SystemExit, match="one task, fold split, training and spec"):
        cross_validate_recipe.merged([run(0), run(1, seed=14)])
    with pytest.raises(SystemExit, match="fold 0 is in two runs"):
        cross_validate_recipe.merged([run(0), run(0)])


def test_a_starting_point_that_saw_the_folds_is_refused():
    with pytest.raises(SystemExit, match="NAME one of"):
        cross_validate_recipe.overrides(["start_from=\"assets/breast\""])
    assets = SCRIPT.parents[1] / "assets"
    with pytest.raises(SystemExit, match="trained on breastmnist, whose folds it would have seen"):
        cross_validate_recipe.check_backbone(str(assets / "breast"), "breastmnist")
    cross_validate_recipe.check_backbone(str(assets / "pneumonia"), "breastmnist")


def test_the_summary_averages_the_folds_and_pools_their_predictions():
    folds = {
        0: {"score": 0.75, "accuracy_per_layer": [0.5, 1.0], "auc_per_layer": [0.5, 0.5],
            "last_exit_probs": [[0.9, 0.1], [0.2, 0.8]], "labels": [0, 1]},
        1: {"score": 0.25, "accuracy_per_layer": [0.5, 0.0], "auc_per_layer": [0.5, 0.5],
            "last_exit_probs": [[0.3, 0.7], [0.6, 0.4]], "labels": [0, 1]},
    }
    result = cross_validate_recipe.summary(folds)
    assert result["folds"] == [0, 1] and result["mean_score"] == pytest.approx(0.5)
    assert result["mean_accuracy"] == pytest.approx(0.5) and result["pooled_accuracy"] == pytest.approx(0.5)
    assert result["mean_accuracy_per_layer"] == pytest.approx([0.5, 0.5]) and result["mean_auc_per_layer"] == [0.5, 0.5]
    # positives score 0.8 and 0.4, negatives 0.1 and 0.7: 3 of the 4 pairs ordered right
    assert result["pooled_auc"] == pytest.approx(0.75)


def test_set_takes_train_config_fields_as_json_and_refuses_others():
    assert cross_validate_recipe.overrides(["balance_classes=true", "label_smoothing=0"]) == {
        "balance_classes": True, "label_smoothing": 0}
    with pytest.raises(SystemExit, match="NAME one of"):
        cross_validate_recipe.overrides(["dropout=0.1"])
    with pytest.raises(SystemExit, match="NAME=JSON"):
        cross_validate_recipe.overrides(["seed"])
    assert cross_validate_recipe.parse_assignments(['patch_stem="conv"', "width=64"]) == {"patch_stem": "conv", "width": 64}


def test_the_notes_quote_the_committed_cross_validation_runs():
    from epee_demo.data.tasks import BREAST_CARD_NOTES, RETINA_CARD_NOTES, RETINA_DEPTH_NOTE

    runs = SCRIPT.parents[1] / "docs" / "cross_validation"

    def summary(name):
        return json.loads((runs / f"{name}.json").read_text())["summary"]

    shipped = summary("breast_shipped")["mean_score"]
    assert f"mean of last-exit accuracy and AUC, {shipped:.3f})" in BREAST_CARD_NOTES
    for name, wording in (("breast_pneumonia_backbone", "backbone"), ("breast_class_weights", "class weights"),
                          ("breast_no_label_smoothing", "no label smoothing")):
        assert summary(name)["mean_score"] < shipped
        assert f"{wording} ({summary(name)['mean_score']:.3f})" in BREAST_CARD_NOTES
    seed14 = summary("breast_shipped_seed14")["mean_score"]
    assert f"the recipe itself scores {seed14:.3f} with seed 14" in BREAST_CARD_NOTES
    assert summary("breast_pneumonia_backbone")["mean_score"] < seed14  # below the seed's reach, as the card says
    retina = summary("retina_shipped")
    accuracy, auc = retina["mean_accuracy_per_layer"], retina["mean_auc_per_layer"]
    assert f"averaged {accuracy[0]:.3f} at layer 1 and {accuracy[-1]:.3f} at the last" in RETINA_DEPTH_NOTE
    assert f"{accuracy[0]:.3f} at layer 1 and {accuracy[-1]:.3f} at the last on average (AUC {auc[0]:.3f} and " \
           f"{auc[-1]:.3f})" in RETINA_CARD_NOTES
    gain = summary("retina_conv_stem_64")["mean_score"] - retina["mean_score"]
    assert f"scored {gain:.3f} higher" in RETINA_CARD_NOTES
