"""The shipped models in assets/: they load, reproduce their cached traces, and read the example notes;
the example images a model folder offers the page."""

import numpy as np
import pytest

from epee_demo.data import DATA_DIR_VARIABLE
from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.model.folder import weights_path
from epee_demo.model.registry import shipped_models
from epee_demo.data.tasks import TASKS
from epee_demo.training.joint import kept_epoch

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def organ_system():
    return shipped_models()["organ-system"]


@slow
def test_every_task_is_shipped_in_the_order_of_tasks():
    assert list(shipped_models()) == ["organ-system", "pneumonia", "retina", "breast", "organ-system-albert",
                                      "organ-system-gpt2", "ddi", "phee-event-type", "phee-argument-role", "gad"] == list(TASKS)


@slow
@pytest.mark.parametrize("task", ["pneumonia", "retina", "breast"])
def test_shipped_image_models_have_four_examples_per_class_and_an_honest_card(task, monkeypatch):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    model = shipped_models()[task]
    examples = model.example_images()
    counts = np.bincount([e.label for e in examples], minlength=model.spec.num_labels)
    assert (counts >= 4).all() and all(e.shipped for e in examples)
    assert [e.label for e in examples] == sorted(e.label for e in examples)  # grades in order
    assert all((model.folder / "examples" / f"test-{e.index:04d}.png").stat().st_size < 4000 for e in examples)
    card = model.card()
    assert "Must not be used for" in card and "What the images are" in card and "CC BY 4.0" in card
    assert "| layer | validation accuracy | test accuracy | validation AUC | test AUC |" in card


def test_shipped_examples_come_first_then_more_from_the_data_directory(tiny_rgb_shipped_model, monkeypatch,
                                                                       tmp_path):
    model = tiny_rgb_shipped_model
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    shipped = model.example_images()
    assert [e.label for e in shipped] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and all(e.shipped for e in shipped)
    note = model.examples_note(shipped)
    assert note.startswith("10 test-split images ship with the model.")
    assert f"More examples could come from a configured data directory: set `{DATA_DIR_VARIABLE}`" in note
    assert "medmnist/retinamnist.npz" in note

    (tmp_path / "medmnist").mkdir()
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(5), 12)
    arrays = {f"{split}_images": rng.integers(0, 256, (60, 28, 28, 3), dtype=np.uint8) for split in ("train", "val", "test")}
    arrays.update({f"{split}_labels": labels.reshape(-1, 1).astype(np.uint8) for split in ("train", "val", "test")})
    np.savez(tmp_path / "medmnist" / "retinamnist.npz", **arrays)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    both = model.example_images(more_per_class=3)
    assert [e.label for e in both] == sorted(e.label for e in both)
    for label in range(5):
        in_class = [e for e in both if e.label == label]
        assert [e.shipped for e in in_class] == [True, True, False, False, False]
        assert [e.index for e in in_class[:2]] == [e.index for e in shipped if e.label == label]
    more = [e for e in both if not e.shipped]
    assert len(more) == 15 and not any(e.shipped for e in more)
    assert not {e.index for e in more} & {e.index for e in shipped}
    assert all(labels[e.index] == e.label for e in more)
    assert model.examples_note(both) == ("10 test-split images ship with the model. 15 more come from the "
                                         f"configured data directory (`{DATA_DIR_VARIABLE}`).")
    (tmp_path / "medmnist" / "retinamnist.npz").unlink()
    assert "holds no `medmnist/retinamnist.npz`" in model.examples_note(model.example_images())


@slow
def test_shipped_text_model_reads_the_example_notes(organ_system):
    trace = organ_system.classifier.trace([n.text for n in EXAMPLE_NOTES])
    answers = np.array(trace.label_names)[trace.predictions]  # [notes, layers]
    for note, per_layer in zip(EXAMPLE_NOTES, answers):
        if note.overthinks:  # an earlier exit is right, the last one is not
            assert per_layer[-1] != note.expected_label and note.expected_label in per_layer[:-1], note.title
        else:
            assert per_layer[-1] == note.expected_label, note.title
    assert sum(n.overthinks for n in EXAMPLE_NOTES) >= 2 and sum(bool(n.also_mentions) for n in EXAMPLE_NOTES) >= 2


@slow
def test_shipped_text_model_reproduces_its_cached_test_trace(organ_system):
    test = TASKS["organ-system"].load_dataset().test
    index = np.arange(0, len(test), 25)
    fresh = organ_system.classifier.trace([test.inputs[i] for i in index], [test.labels[i] for i in index])
    cached = organ_system.trace("test").subset(index)
    np.testing.assert_array_equal(fresh.labels, cached.labels)
    assert (fresh.predictions == cached.predictions).mean() > 0.99
    np.testing.assert_allclose(fresh.probs, cached.probs, atol=5e-3)  # the cache stores float16


@slow
def test_shipped_metrics_match_the_cached_trace(organ_system):
    trace = organ_system.trace("test")
    accuracy = (trace.predictions == trace.labels[:, None]).mean(axis=0)
    np.testing.assert_allclose(accuracy, organ_system.metrics["test_accuracy_per_layer"], atol=2e-3)


@slow
@pytest.mark.parametrize("task", ["organ-system-albert", "organ-system-gpt2"])
def test_shipped_from_scratch_models_say_so_fit_the_budget_and_reproduce_their_traces(task):
    model = shipped_models()[task]
    assert "trained from scratch" in model.task.title and "trained from scratch" in model.spec.title
    assert "**Trained from scratch.**" in model.card() and "WordPiece tokenizer" in model.card()
    assert sum(path.stat().st_size for path in model.folder.iterdir()) < 8_000_000
    assert weights_path(model.folder).stat().st_size < 6_000_000
    test = model.task.load_dataset().test
    index = np.arange(0, len(test), 25)
    fresh = model.classifier.trace([test.inputs[i] for i in index], [test.labels[i] for i in index])
    cached = model.trace("test").subset(index)
    np.testing.assert_allclose(fresh.probs, cached.probs, atol=1e-3)
    accuracy = (model.trace("test").predictions == model.trace("test").labels[:, None]).mean(axis=0)
    np.testing.assert_allclose(accuracy, model.metrics["test_accuracy_per_layer"], atol=1e-9)


@slow
def test_shipped_argument_role_model_reproduces_its_trace_and_metrics():
    from epee_demo.analysis.task_metrics import per_layer
    from epee_demo.data.text_examples import read_text_examples

    model = shipped_models()["phee-argument-role"]
    trace = model.trace("test")
    assert trace.num_examples == model.metrics["split_sizes"]["test"] == 4153
    np.testing.assert_allclose(per_layer(trace, "macro_f1"), model.metrics["test_macro_f1_per_layer"], atol=1e-9)
    np.testing.assert_allclose(per_layer(trace, "accuracy"), model.metrics["test_accuracy_per_layer"], atol=1e-9)
    assert {"consistentee", "jei"} <= {row["rule"] for row in model.metrics["test_rules_at_default"]}
    examples, attribution = read_text_examples(model.folder / "examples.json")
    assert {e.label_name for e in examples} == set(model.spec.label_names) and "MIT" in attribution
    assert all(model.task.marks.parse(e.text) for e in examples)
    test = model.task.load_dataset().test
    index = np.arange(0, len(test), 200)
    fresh = model.classifier.trace([test.inputs[i] for i in index], [test.labels[i] for i in index])
    np.testing.assert_allclose(fresh.probs, trace.subset(index).probs, atol=1e-3)
    assert sum(path.stat().st_size for path in model.folder.iterdir()) < 6_000_000


@slow
def test_depth_notes_quote_the_shipped_metrics():
    models = shipped_models()
    retina, note = models["retina"], TASKS["retina"].depth_note
    val = retina.metrics["val_accuracy_per_layer"]
    assert f"{val[0]:.3f} at layer 1" in note and f"{val[-1]:.3f} at layer 8" in note
    auc = retina.metrics["test_auc_per_layer"]
    assert f"test AUC from {auc[0]:.3f} to {auc[-1]:.3f}" in note
    test = retina.trace("test")
    assert f"only {100 * (test.predictions[:, 0] == test.predictions[:, -1]).mean():.1f}%" in note

    pneumonia = models["pneumonia"]
    history = pneumonia.metrics["history"]
    losses = kept_epoch(history, pneumonia.metrics["train_config"]["keep_epoch_by"])["train_loss_per_layer"]
    note = TASKS["pneumonia"].depth_note
    assert f"their training loss, {losses[-1]:.3f}, is as low as layer 1's {losses[0]:.3f}" in note
    test = pneumonia.trace("test")
    agreement = (test.predictions == test.predictions[:, -1:]).mean(axis=0)
    assert f"{100 * agreement.min():.1f}-100%" in note
    accuracy, auc = pneumonia.metrics["test_accuracy_per_layer"], pneumonia.metrics["test_auc_per_layer"]
    assert f"{accuracy[0]:.3f} at layer 1 and {accuracy[-1]:.3f} at the last (AUC {min(auc):.3f}-{max(auc):.3f})" in note

    breast, note = models["breast"], TASKS["breast"].depth_note
    accuracy, auc = breast.metrics["test_accuracy_per_layer"], breast.metrics["test_auc_per_layer"]
    assert accuracy[-1] < 0.863  # below ResNet-18 (28), as the note says
    assert f"test accuracy {accuracy[-1]:.3f} against" in note and f"AUC {auc[-1]:.3f} against" in note
    val = breast.metrics["val_accuracy_per_layer"]
    assert f"validation accuracy {min(val):.3f}-{max(val):.3f} at every exit" in note
    test = breast.trace("test")
    assert f"on {100 * (test.predictions[:, 0] == test.predictions[:, -1]).mean():.1f}% of the test" in note
    malignant = test.labels == 0
    assert f"finds {100 * (test.predictions[malignant, -1] == 0).mean():.0f}% of the malignant" in note
    assert "malignant_logit_offset" not in breast.spec.extra  # shipped without one, as the card says


def test_models_trained_on_non_commercial_text_say_so_above_their_input():
    models = shipped_models()
    organ_system = models["organ-system"]  # its real-prose continuation read DDI 2013 abstracts (CC BY-NC 4.0)
    assert organ_system.spec.extra["license"] == "cc-by-nc-4.0"
    assert organ_system.page_note.startswith("**Non-commercial use only**")
    assert models["ddi"].page_note.startswith(models["ddi"].task.page_note)  # the task's own note comes first
    assert models["retina"].page_note == ""  # CC BY 4.0 and not temperature-scaled: nothing to add


def test_temperature_scaled_models_say_so_with_their_temperatures_and_the_others_do_not():
    from epee_demo.model.folder import TEMPERATURES_KEY

    scaled = {name: model for name, model in shipped_models().items() if TEMPERATURES_KEY in model.spec.extra}
    assert "ddi" in scaled
    for model in scaled.values():
        temperatures = model.spec.extra[TEMPERATURES_KEY]["temperatures"]
        assert len(temperatures) == model.trace("test").num_layers  # one per exit
        assert ", ".join(f"{t:.2f}" for t in temperatures) in model.page_note
        assert "Temperature-scaled exits" in model.page_note
        assert "## Temperature scaling of the exits" in (model.folder / "README.md").read_text()  # the card says so too
    for name, model in shipped_models().items():
        if name not in scaled:
            assert "Temperature-scaled" not in model.page_note
