import numpy as np
import pytest

from epee_demo.data import DATA_DIR_VARIABLE, data_dir
from epee_demo.data.medmnist import LABEL_NAMES, example_images, load_medmnist

needs_data = pytest.mark.skipif(
    data_dir() is None or not (data_dir() / "medmnist" / "pneumoniamnist.npz").is_file(),
    reason=f"{DATA_DIR_VARIABLE} does not point at a folder with medmnist/pneumoniamnist.npz",
)


def test_missing_data_dir_is_named_in_the_error(monkeypatch):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    with pytest.raises(FileNotFoundError, match=DATA_DIR_VARIABLE):
        load_medmnist()
    assert example_images() == []


def test_missing_file_is_named_in_the_error(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pneumoniamnist.npz"):
        load_medmnist()
    assert example_images() == []


@needs_data
def test_splits_shapes_and_labels():
    dataset = load_medmnist()
    assert dataset.label_names == LABEL_NAMES == ["normal", "pneumonia"]
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (3882, 524, 624)
    image = dataset.test.inputs[0]
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert np.bincount(dataset.test.labels).tolist() == [234, 390]
    assert np.bincount(dataset.train.labels).tolist() == [388, 3494]
    assert "CC BY 4.0" in dataset.licence and "Scientific Data 10, 41 (2023)" in dataset.licence


@needs_data
def test_example_images_come_from_the_test_split_with_gold_labels():
    dataset = load_medmnist()
    examples = example_images(per_class=2)
    assert [e.label for e in examples] == [0, 0, 1, 1]
    for example in examples:
        assert example.label_name == LABEL_NAMES[example.label]
        assert dataset.test.labels[example.index] == example.label
        np.testing.assert_array_equal(dataset.test.inputs[example.index], example.image)


@pytest.mark.slow
@needs_data
def test_shipped_pneumonia_model_reproduces_its_cached_test_trace():
    from epee_demo.registry import shipped_models
    from epee_demo.training import per_layer_accuracy

    shipped = shipped_models()["pneumonia"]
    test = load_medmnist().test
    count = 100
    fresh = shipped.classifier.trace(test.inputs[:count], test.labels[:count])
    cached = shipped.trace("test").subset(np.arange(count))
    np.testing.assert_array_equal(cached.labels, fresh.labels)
    # The cached trace came from the fp32 model before its weights were stored as fp16.
    np.testing.assert_allclose(fresh.probs, cached.probs, atol=5e-3)
    assert (fresh.predictions == cached.predictions).mean() >= 0.99
    np.testing.assert_allclose(per_layer_accuracy(fresh), per_layer_accuracy(cached), atol=0.02)
