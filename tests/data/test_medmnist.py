import numpy as np
import pytest

from epee_demo.data import DATA_DIR_VARIABLE, data_dir
from epee_demo.data.medmnist import (
    DATASETS, choose_examples, example_images, load_medmnist, read_examples, write_examples,
)

PNEUMONIA_LABELS = list(DATASETS["pneumoniamnist"].label_names)


def has_data(name: str) -> bool:
    return data_dir() is not None and (data_dir() / "medmnist" / f"{name}.npz").is_file()


needs_data = pytest.mark.skipif(not has_data("pneumoniamnist"),
                                reason=f"{DATA_DIR_VARIABLE} has no medmnist/pneumoniamnist.npz")


def test_missing_data_dir_is_named_in_the_error(monkeypatch):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    with pytest.raises(FileNotFoundError, match=DATA_DIR_VARIABLE):
        load_medmnist()
    assert example_images() == []


def test_missing_file_is_named_in_the_error(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="retinamnist.npz"):
        load_medmnist("retinamnist")
    assert example_images(name="breastmnist") == []


def test_retina_grades_are_named_in_order():
    names = DATASETS["retinamnist"].label_names
    assert [name.split(" (")[0] for name in names] == [f"grade {g}" for g in range(5)]
    assert names[0] == "grade 0 (no DR)" and names[-1] == "grade 4 (proliferative DR)"
    assert DATASETS["breastmnist"].label_names == ("malignant", "normal or benign")


# (train, val, test) sizes and the class counts of train and test, from MANIFEST.md
SPLITS = {
    "pneumoniamnist": ((4708, 524, 624), [1214, 3494], [234, 390], (28, 28)),
    "retinamnist": ((1080, 120, 400), [486, 128, 206, 194, 66], [174, 46, 92, 68, 20], (28, 28, 3)),
    "breastmnist": ((546, 78, 156), [147, 399], [42, 114], (28, 28)),
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_splits_shapes_and_labels(name):
    if not has_data(name):
        pytest.skip(f"{DATA_DIR_VARIABLE} has no medmnist/{name}.npz")
    sizes, train_counts, test_counts, shape = SPLITS[name]
    dataset = load_medmnist(name)
    assert dataset.label_names == list(DATASETS[name].label_names)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == sizes
    image = dataset.test.inputs[0]
    assert image.shape == shape and image.dtype == np.uint8
    assert np.bincount(dataset.train.labels).tolist() == train_counts
    assert np.bincount(dataset.test.labels).tolist() == test_counts
    assert "CC BY 4.0" in dataset.licence and "Scientific Data 10, 41 (2023)" in dataset.licence
    assert PNEUMONIA_LABELS == ["normal", "pneumonia"]


@needs_data
def test_example_images_come_from_the_test_split_with_gold_labels():
    dataset = load_medmnist()
    examples = example_images(per_class=2)
    assert [e.label for e in examples] == [0, 0, 1, 1]
    for example in examples:
        assert example.label_name == PNEUMONIA_LABELS[example.label] and not example.shipped
        assert dataset.test.labels[example.index] == example.label
        np.testing.assert_array_equal(dataset.test.inputs[example.index], example.image)
    again = example_images(per_class=2, exclude=frozenset(e.index for e in examples))
    assert not {e.index for e in again} & {e.index for e in examples}


def test_choose_examples_takes_each_class_in_order_and_skips_excluded():
    images = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2)
    labels = [2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    chosen = choose_examples(images, labels, ["a", "b", "c"], per_class=2, exclude=frozenset({1}))
    assert [e.label for e in chosen] == [0, 0, 1, 1, 2, 2]
    assert 1 not in [e.index for e in chosen]
    assert all(labels[e.index] == e.label and (e.image == images[e.index]).all() for e in chosen)
    assert len(choose_examples(images, labels, ["a", "b", "c", "d"], per_class=5)) == 3 + 3 + 4  # class d has none


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 3)])
def test_written_examples_read_back_exactly(tmp_path, shape):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    chosen = choose_examples(images, [0, 1, 0, 1, 0, 1], ["x", "y"], per_class=2)
    write_examples(chosen, tmp_path / "examples")
    back = read_examples(tmp_path / "examples", ["x", "y"])
    assert [(e.label, e.label_name, e.index) for e in back] == [(e.label, e.label_name, e.index) for e in chosen]
    assert all(e.shipped for e in back)
    for original, loaded in zip(chosen, back):
        np.testing.assert_array_equal(loaded.image, original.image)
    assert read_examples(tmp_path / "nothing", ["x", "y"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("task, name", [("pneumonia", "pneumoniamnist"), ("retina", "retinamnist"),
                                        ("breast", "breastmnist")])
def test_shipped_image_model_reproduces_its_cached_test_trace(task, name):
    from epee_demo.model.registry import shipped_models
    from epee_demo.training.joint import per_layer_accuracy

    if not has_data(name):
        pytest.skip(f"{DATA_DIR_VARIABLE} has no medmnist/{name}.npz")
    shipped = shipped_models()[task]
    test = load_medmnist(name).test
    count = 100
    fresh = shipped.classifier.trace(test.inputs[:count], test.labels[:count])
    cached = shipped.trace("test").subset(np.arange(count))
    np.testing.assert_array_equal(cached.labels, fresh.labels)
    # The cached trace came from the fp32 model before its weights were stored as fp16.
    np.testing.assert_allclose(fresh.probs, cached.probs, atol=5e-3)
    assert (fresh.predictions == cached.predictions).mean() >= 0.99
    np.testing.assert_allclose(per_layer_accuracy(fresh), per_layer_accuracy(cached), atol=0.02)
    for example in shipped.example_images(more_per_class=0):
        assert example.shipped and test.labels[example.index] == example.label
        np.testing.assert_array_equal(example.image, test.inputs[example.index])
