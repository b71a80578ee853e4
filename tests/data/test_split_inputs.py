import numpy as np
import pytest

from epee_demo.analysis.whole_split import overthinking, prepare
from epee_demo.data.split_inputs import read_split_inputs, shipped_indices, write_split_inputs
from epee_demo.model.registry import shipped_models
from epee_demo.ui.lesson_tab import lesson_example


def test_texts_and_images_round_trip(tmp_path):
    texts = {"test": {7: "Chest pain.\nST elevation.", 2: "[DRUG]aspirin[/DRUG] and [DRUG]warfarin[/DRUG]"},
             "val": {}}
    shipped = read_split_inputs(write_split_inputs(tmp_path / "t.npz", texts, "a corpus", "CC BY 4.0"))
    assert shipped.get("test", 7) == texts["test"][7] and shipped.get("test", 2) == texts["test"][2]
    assert shipped.get("test", 3) is None and shipped.get("val", 0) is None and shipped.get("train", 7) is None
    assert shipped.attribution == "From a corpus. Licence: CC BY 4.0."
    images = {"test": {4: np.arange(784, dtype=np.uint8).reshape(28, 28)}}
    shipped = read_split_inputs(write_split_inputs(tmp_path / "i.npz", images, "MedMNIST", "CC BY 4.0"))
    assert shipped.get("test", 4).dtype == np.uint8 and np.array_equal(shipped.get("test", 4), images["test"][4])
    assert read_split_inputs(tmp_path / "missing.npz").get("test", 4) is None
    assert read_split_inputs(tmp_path / "missing.npz").attribution == ""


@pytest.mark.slow
@pytest.mark.parametrize("name", list(shipped_models()))
def test_every_example_the_page_shows_ships_its_input(name):
    model = shipped_models()[name]
    assert model.split_inputs.licence and model.split_inputs.source
    for split in ("test",):  # the validation split's inputs do not ship
        prep = prepare(model.trace(split))
        destructive = overthinking(prep).destructive
        shown = shipped_indices(destructive, model.trace(split).labels, lesson_example(prep))
        assert len(model.split_inputs.inputs[split]) == len(shown)  # only a few ship: the data stay in the data dir
        assert shown and all(destructive[i] for i in shown if i != lesson_example(prep))
        missing = [i for i in sorted(shown) if model.split_inputs.get(split, i) is None]
        assert not missing, f"{name} {split}: run scripts/ship_split_inputs.py assets/{name}"
        kind = np.ndarray if model.spec.modality == "image" else str
        assert all(isinstance(model.split_inputs.get(split, i), kind) for i in shown)
        if model.task.marks is not None:  # Analyze reads them as typed: their marks fit the task
            for i in shown:
                model.task.marks.parse(model.split_inputs.get(split, i))
    assert "## Shipped split inputs" in model.card()


def test_only_a_few_examples_per_class_ship_and_the_lessons_always():
    destructive = np.array([True, True, True, False, True, True, False])
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    assert shipped_indices(destructive, labels, always=6, per_class=2) == [0, 1, 4, 5, 6]
    assert shipped_indices(np.zeros(7, bool), labels, always=3) == [3]
