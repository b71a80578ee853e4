"""Per-exit temperature scaling: the rewritten traces, the fit on validation, the record and the card."""

import numpy as np
import pytest

from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.exit_temperature import (
    RECORD_KEY, temperature_scale_folder, temperature_markdown, fitted_temperatures, negative_log_likelihoods, tempered,
)
from tests.conftest import _tiny_vit_folder


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_tempered_divides_each_exits_logits_by_its_temperature_and_keeps_every_answer():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(9, 3, 4)) * 3
    trace = ExitTrace(softmax(logits), ("a", "b", "c", "d"), rng.integers(0, 4, 9))
    temperatures = np.array([0.5, 1.0, 2.5])
    moved = tempered(trace, temperatures)
    np.testing.assert_allclose(moved.probs, softmax(logits / temperatures[None, :, None]), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(moved.probs.argmax(axis=-1), trace.probs.argmax(axis=-1))
    np.testing.assert_array_equal(moved.labels, trace.labels)


def test_the_fitted_temperature_undoes_a_known_overconfidence_per_exit():
    # labels drawn from softmax(logits); exit i shows softmax(logits * k_i), so its best temperature is about k_i
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(20000, 1, 3)) * 2
    cumulative = softmax(logits[:, 0]).cumsum(axis=1)
    labels = (rng.random((20000, 1)) > cumulative).sum(axis=1)
    sharpness = np.array([1.0, 2.0, 0.5])
    trace = ExitTrace(softmax(logits * sharpness[None, :, None]), ("a", "b", "c"), labels)
    np.testing.assert_allclose(fitted_temperatures(trace), sharpness, rtol=0.06)


def test_negative_log_likelihoods_match_a_loop():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=(30, 2))
    labels = rng.integers(0, 3, 30)
    trace = ExitTrace(probs, ("a", "b", "c"), labels)
    grid = [0.5, 1.0, 2.0]
    expected = [[-np.mean(np.log(softmax(np.log(probs[:, i]) / t)[np.arange(30), labels])) for i in range(2)]
                for t in grid]
    np.testing.assert_allclose(negative_log_likelihoods(trace, grid), expected, rtol=1e-6)  # float32 probs


def test_the_temperatures_are_fitted_on_validation_written_into_every_head_and_the_traces_match_the_weights(
        tmp_path_factory):
    from epee_demo.model import folder as model_folder

    labels = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    folder, images = _tiny_vit_folder(tmp_path_factory, "breast-temperature", ["malignant", "benign"], 1, labels)
    before = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    temperatures, traces = temperature_scale_folder(folder)
    np.testing.assert_allclose(temperatures, fitted_temperatures(before["val"]))
    record = model_folder.read_spec(folder).extra[RECORD_KEY]
    assert record["temperatures"] == pytest.approx(temperatures, abs=1e-4)
    nll = negative_log_likelihoods(before["val"], [1.0, *temperatures])  # [1 + L, L]
    assert record["val_nll_before"] == pytest.approx(nll[0], abs=1e-4)
    assert record["val_nll_after"] == pytest.approx([nll[1 + i, i] for i in range(len(temperatures))], abs=1e-4)
    for split in model_folder.SPLITS:
        written = model_folder.read_trace(folder, split)
        np.testing.assert_allclose(written.probs, tempered(before[split], temperatures).probs, atol=1e-6)
        np.testing.assert_allclose(traces[split].probs, written.probs, atol=1e-6)
    again = model_folder.load_classifier(folder).trace(images, labels)  # the saved heads give the new trace
    np.testing.assert_allclose(again.probs, traces["test"].probs, atol=2e-3)
    with pytest.raises(ValueError, match="temperature-scaled already"):
        temperature_scale_folder(folder)


def test_temperature_scaling_is_refused_on_a_folder_with_learned_exits(tmp_path_factory):
    from epee_demo.model import folder as model_folder

    folder, _ = _tiny_vit_folder(tmp_path_factory, "breast-temperature-learned", ["malignant", "benign"], 1, [0, 1, 1, 0])
    (folder / model_folder.LEARNED_EXITS_FILE).write_bytes(b"")
    with pytest.raises(ValueError, match="train-exits"):
        temperature_scale_folder(folder)


def test_the_card_section_lists_every_exits_temperature_and_is_empty_without_a_record():
    record = {"temperatures": [1.1, 1.5], "grid": [0.25, 4.0, 241], "val_nll_before": [0.5, 0.4],
              "val_nll_after": [0.45, 0.3]}
    section = temperature_markdown(record)
    assert "| temperature | 1.100 | 1.500 |" in section
    assert "| validation NLL after | 0.450 | 0.300 |" in section
    assert temperature_markdown(None) == ""


def test_a_folder_without_exit_head_biases_is_refused_and_left_as_it_was(tmp_path_factory):
    from safetensors.torch import load_file, save_file

    from epee_demo.model import folder as model_folder

    folder, _ = _tiny_vit_folder(tmp_path_factory, "breast-temperature-headless", ["malignant", "benign"], 1, [0, 1, 1, 0])
    weights = load_file(model_folder.weights_path(folder))
    del weights["heads.1.out.bias"]
    save_file(weights, model_folder.weights_path(folder))
    with pytest.raises(ValueError, match="heads.1.out.bias"):
        temperature_scale_folder(folder)
    assert RECORD_KEY not in model_folder.read_spec(folder).extra

