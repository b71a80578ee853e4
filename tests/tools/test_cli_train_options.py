"""``epee-demo train``'s options for a task's training split (no model is trained here)."""

import dataclasses

import pytest

from epee_demo.data import tasks
from epee_demo.tools.cli import main
from epee_demo.training.joint import train_config_lines


class Loaded(Exception):
    """Raised by the stand-in loader once it has seen its options, to stop before any training."""


def test_real_prose_options_reach_the_organ_system_loader(monkeypatch):
    seen = {}

    def loader(**options):
        seen.update(options)
        raise Loaded

    task = dataclasses.replace(tasks.TASKS["organ-system"], load_dataset=loader)
    monkeypatch.setitem(tasks.TASKS, "organ-system", task)
    with pytest.raises(Loaded):
        main(["train", "--task", "organ-system", "--out", "unused", "--real-prose-per-class", "300",
              "--real-prose-copies", "2"])
    assert seen == {"real_prose_per_class": 300, "real_prose_copies": 2}
    seen.clear()
    with pytest.raises(Loaded):
        main(["train", "--task", "organ-system", "--out", "unused"])
    assert seen == {}  # the task's own defaults (tasks.ORGAN_SYSTEM_REAL_PROSE_*) apply


def test_negative_subsample_options_reach_the_ddi_loader(monkeypatch):
    seen = {}

    def loader(**options):
        seen.update(options)
        raise Loaded

    monkeypatch.setitem(tasks.TASKS, "ddi", dataclasses.replace(tasks.TASKS["ddi"], load_dataset=loader))
    with pytest.raises(Loaded):
        main(["train", "--task", "ddi", "--out", "unused", "--negatives-per-positive", "3",
              "--negative-sample-seed", "1"])
    assert seen == {"negatives_per_positive": 3.0, "negative_sample_seed": 1}


def test_a_task_option_on_another_task_is_refused(capsys):
    assert main(["train", "--task", "pneumonia", "--out", "unused", "--real-prose-per-class", "300"]) == 2
    assert "--real-prose-per-class applies to --task organ-system only" in capsys.readouterr().err
    assert main(["train", "--task", "organ-system", "--out", "unused", "--negatives-per-positive", "3"]) == 2
    assert "--negatives-per-positive applies to --task ddi only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--task", "ddi", "--out", "unused", "--negatives-per-positive", "0"])
    assert "must be above 0" in capsys.readouterr().err


def test_the_card_names_the_options_the_training_split_was_built_with():
    options = {"real_prose_per_class": 300, "real_prose_copies": 4}
    line = train_config_lines({"train_config": {"dataset_options": options}})
    assert "`real_prose_per_class=300`" in line and "`real_prose_copies=4`" in line
    assert train_config_lines({"train_config": {"dataset_options": {}}}) == ""
    assert train_config_lines({"train_config": {}}) == ""


def test_the_card_names_both_ends_of_a_weight_interpolation():
    mix = {"alpha": 0.25, "from": {"folder": "shipped", "train_config": {}}, "to": {"folder": "rpA", "train_config": {}}}
    line = train_config_lines({"train_config": {"weight_interpolation": mix}})
    assert "0.75 x (shipped) + 0.25 x (rpA)" in line and "distant labels" not in line
    mix["to"]["train_config"] = {"dataset_options": {"real_prose_per_class": 300}}
    line = train_config_lines({"train_config": {"weight_interpolation": mix}})
    assert "real prose with distant labels" in line and "CC BY-NC 4.0" in line


def test_the_recorded_options_are_read_back_from_the_metrics():
    from epee_demo.training.joint import dataset_options_of

    assert dataset_options_of({"train_config": {"dataset_options": {"real_prose_per_class": 300}}}) == {
        "real_prose_per_class": 300}
    assert dataset_options_of({"train_config": {"epochs": 1}}) == {} == dataset_options_of({})


def test_the_card_says_which_epochs_a_weight_average_took():
    line = train_config_lines({"train_config": {"epochs": 90, "keep_epoch_by": "weight_average"}})
    assert "the mean of the weights after each of epochs 68-90 of 90" in line and "no epoch was chosen" in line
    assert train_config_lines({"train_config": {"epochs": 90, "keep_epoch_by": "metric_and_auc"}}) == ""


@pytest.mark.parametrize("task, layers", [("ddi", "4"), ("retina", "0")])
def test_the_layers_are_refused_for_a_text_model_or_below_one(task, layers, tmp_path, capsys):
    assert main(["train", "--task", task, "--out", str(tmp_path / "m"), "--layers", layers, "--quiet"]) == 2
    assert "--layers takes 1 or more and applies to the image tasks" in capsys.readouterr().err

