"""One class's logit offset on every exit: the rewritten traces, the choice on validation, the record."""

import numpy as np
import pytest

from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.logit_offset import (
    add_class_offset, chosen_offset, last_exit_scores, record_key, shifted,
)
from tests.conftest import _tiny_vit_folder


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_shifted_adds_the_offset_to_one_class_logit_at_every_exit():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 3, 4))
    trace = ExitTrace(softmax(logits), ("a", "b", "c", "d"), rng.integers(0, 4, 7))
    moved = shifted(trace, 2, 0.7)
    expected = softmax(logits + 0.7 * np.eye(4)[2])
    np.testing.assert_allclose(moved.probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(moved.labels, trace.labels)


def test_last_exit_scores_match_a_loop_over_the_grid():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(2), size=(40, 3))
    labels = rng.integers(0, 2, 40)
    trace = ExitTrace(probs, ("malignant", "benign"), labels)
    grid = np.linspace(-2, 2, 9)
    expected = []
    for d in grid:
        last = np.log(probs[:, -1]) + np.array([d, 0.0])
        expected.append(np.mean(last.argmax(axis=1) == labels))
    np.testing.assert_allclose(last_exit_scores(trace, 0, grid, "accuracy"), expected)
    # a large enough offset makes every answer class 0, a small enough one class 1
    assert last_exit_scores(trace, 0, [50.0], "accuracy")[0] == pytest.approx(np.mean(labels == 0))
    assert last_exit_scores(trace, 0, [-50.0], "accuracy")[0] == pytest.approx(np.mean(labels == 1))


def test_the_chosen_offset_is_the_best_or_the_middle_of_a_tied_plateau():
    assert chosen_offset([0.0, 0.5, 1.0, 1.5], [0.2, 0.9, 0.3, 0.1]) == 0.5
    assert chosen_offset([-1.0, -0.5, 0.0, 0.5, 1.0], [0.8, 0.9, 0.9, 0.9, 0.7]) == 0.0
    assert chosen_offset([0.0, 1.0, 2.0, 3.0], [0.9, 0.9, 0.5, 0.9]) == 1.0  # lower middle of an even count
    assert record_key("negative") == "negative_logit_offset"
    assert record_key("normal or benign") == "normal_or_benign_logit_offset"


def test_the_offset_is_chosen_on_validation_written_into_every_head_and_the_traces_match_the_weights(tmp_path_factory):
    from epee_demo.data.images import ImagePreprocessor
    from epee_demo.model import folder as model_folder

    labels = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    folder, images = _tiny_vit_folder(tmp_path_factory, "breast", ["malignant", "benign"], 1, labels)
    before = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    grid = np.linspace(-3, 3, 13)
    offsets, traces = add_class_offset(folder, 0, grid, "accuracy")
    scores = last_exit_scores(before["val"], 0, grid, "accuracy")
    offset = chosen_offset(grid, scores)
    np.testing.assert_array_equal(offsets, offset)  # the last exit's choice, in every head
    record = model_folder.read_spec(folder).extra["malignant_logit_offset"]
    assert record["offset"] == offset and len(record["grid"]) == 13
    assert record["val_last_exit_accuracy"] == pytest.approx(scores, abs=1e-4)
    for split in model_folder.SPLITS:
        written = model_folder.read_trace(folder, split)
        np.testing.assert_allclose(written.probs, shifted(before[split], 0, offset).probs, atol=1e-6)
        np.testing.assert_allclose(traces[split].probs, written.probs, atol=1e-6)
    # the saved weights give the rewritten trace (up to their fp16 rounding) at every exit
    classifier = model_folder.load_classifier(folder)
    assert isinstance(classifier.preprocessor, ImagePreprocessor)
    again = classifier.trace(images, labels)
    np.testing.assert_allclose(again.probs, traces["test"].probs, atol=2e-3)


def test_per_exit_offsets_are_each_chosen_for_their_own_exit_and_written_into_their_own_head(tmp_path_factory):
    from epee_demo.model import folder as model_folder
    from epee_demo.training.logit_offset import scores_at_offsets

    labels = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    folder, images = _tiny_vit_folder(tmp_path_factory, "breast-per-exit", ["malignant", "benign"], 1, labels)
    before = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    grid = np.linspace(-3, 3, 13)
    offsets, traces = add_class_offset(folder, 0, grid, "accuracy", per_exit=True)
    val = before["val"]
    expected = [chosen_offset(grid, scores_at_offsets(val, 0, grid, "accuracy", layer)) for layer in range(val.num_layers)]
    np.testing.assert_allclose(offsets, expected)
    record = model_folder.read_spec(folder).extra["malignant_logit_offset"]
    assert record["offsets"] == pytest.approx(expected, abs=1e-4)
    assert len(record["val_accuracy_per_exit"]) == val.num_layers
    for split in model_folder.SPLITS:
        np.testing.assert_allclose(traces[split].probs, shifted(before[split], 0, offsets).probs, atol=1e-6)
    again = model_folder.load_classifier(folder).trace(images, labels)
    np.testing.assert_allclose(again.probs, traces["test"].probs, atol=2e-3)


def test_an_offset_is_refused_on_a_folder_with_learned_exits(tmp_path_factory):
    from epee_demo.model import folder as model_folder

    folder, _ = _tiny_vit_folder(tmp_path_factory, "breast-learned", ["malignant", "benign"], 1, [0, 1, 1, 0])
    (folder / model_folder.LEARNED_EXITS_FILE).write_bytes(b"")
    with pytest.raises(ValueError, match="train-exits"):
        add_class_offset(folder, 0, [0.0, 1.0], "accuracy")


def test_an_offset_is_refused_on_a_temperature_scaled_folder(tmp_path_factory):
    from epee_demo.training.exit_temperature import temperature_scale_folder

    folder, _ = _tiny_vit_folder(tmp_path_factory, "breast-offset-after-temperature", ["malignant", "benign"], 1,
                                 [0, 1, 1, 0])
    temperature_scale_folder(folder)
    with pytest.raises(ValueError, match="before the temperature scaling"):
        add_class_offset(folder, 0, [0.0, 1.0], "accuracy")
