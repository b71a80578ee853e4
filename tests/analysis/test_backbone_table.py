"""The backbone x task table: read off each folder's metrics.json, accuracy and F1 alike."""


import pytest

from epee_demo.model.folder import write_metrics, write_spec
from epee_demo.analysis.backbone_table import backbone_markdown, backbone_rows, backbone_table, backbone_title
from epee_demo.model.backbones import DEFAULT_TEXT_BASE
from epee_demo.model.multi_exit import ModelSpec

ALBERT = {"model_type": "albert", "num_hidden_layers": 3, "num_hidden_groups": 1, "hidden_size": 32}
GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 16}


def model_folder(root, name, base, metrics, lora=None):
    folder = root / name
    folder.mkdir()
    spec = ModelSpec(modality="text", base=base, label_names=["a", "b"], preprocess={"max_length": 8}, lora=lora)
    write_spec(spec, folder)
    if metrics is not None:
        write_metrics(metrics, folder)
    return folder


def accuracy_metrics(dataset, per_exit, epee, average_exit):
    return {"dataset": dataset, "test_accuracy_per_layer": per_exit,
            "test_epee_default": {"rule": "epee", "params": {"tau": 0.2, "patience": 3}, "accuracy": epee,
                                  "average_exit_layer": average_exit, "speedup": len(per_exit) / average_exit}}


@pytest.fixture
def folders(tmp_path):
    return [
        model_folder(tmp_path, "notes", DEFAULT_TEXT_BASE, accuracy_metrics("notes", [0.5, 0.7, 0.8], 0.75, 1.5),
                     lora={"rank": 16, "alpha": 32, "targets": ["query"]}),
        model_folder(tmp_path, "ddi", DEFAULT_TEXT_BASE, {
            "dataset": "ddi", "metric": "micro_f1_positive", "test_micro_f1_positive_per_layer": [0.4, 0.6],
            "test_accuracy_per_layer": [0.9, 0.95],  # present but not the named metric: not read
            "test_epee_default": {"params": {"tau": 0.2, "patience": 3}, "accuracy": 0.93, "average_exit_layer": 1.5},
            "test_rules_at_default": [  # the task metric of every rule at its default, as epee-demo train writes it
                {"rule": "entropy", "params": {"tau": 0.2}, "micro_f1_positive": 0.6, "average_exit_layer": 2.0},
                {"rule": "epee", "params": {"tau": 0.2, "patience": 3}, "micro_f1_positive": 0.55,
                 "accuracy": 0.93, "average_exit_layer": 1.25}]}),
        model_folder(tmp_path, "notes-albert", ALBERT, accuracy_metrics("notes", [0.3, 0.4, 0.45], 0.42, 2.0)),
        model_folder(tmp_path, "untrained", GPT2, None),
    ]


def test_rows_read_each_folders_named_metric_and_group_by_task(folders):
    rows = backbone_rows(folders)
    assert [(row.task, row.metric) for row in rows] == [("notes", "accuracy"), ("notes", "accuracy"),
                                                        ("ddi", "micro_f1_positive")]
    minilm, albert, ddi = rows
    assert minilm.per_exit == (0.5, 0.7, 0.8) and minilm.full_model == 0.8 and minilm.epee == 0.75
    assert minilm.speedup == pytest.approx(2.0)
    assert albert.backbone == "ALBERT (1 shared layer applied 3 times, 32 wide), trained from scratch"
    assert ddi.per_exit == (0.4, 0.6) and ddi.epee == 0.55 and ddi.speedup == pytest.approx(1.6)


def test_markdown_pads_shallower_models_and_names_metric_and_setting(folders):
    lines = backbone_table(folders).splitlines()
    assert lines[0].count("exit ") == 3 + 1  # exits 1-3, then "mean exit layer"
    ddi = next(line for line in lines if line.startswith("| ddi |"))
    assert ddi == ("| ddi | MiniLM-L6 (pretrained) | micro-F1 over the positive classes | 0.400 | 0.600 |  | 0.600 | 0.550 | "
                   "1.25 of 2 | 1.60× |")
    assert lines[-1].startswith("Test split; EPEE at its default setting (tau 0.2, patience 3)")
    assert sum("trained from scratch" in line for line in lines) == 1


def test_a_named_metric_without_its_figures_is_refused(tmp_path):
    folder = model_folder(tmp_path, "odd", GPT2, {"metric": "macro_f1", "test_accuracy_per_layer": [0.5],
                                                  "test_epee_default": {}})
    with pytest.raises(KeyError, match="test_macro_f1_per_layer"):
        backbone_rows([folder])


def test_no_metrics_anywhere_says_so(tmp_path):
    assert backbone_markdown(backbone_rows([model_folder(tmp_path, "x", GPT2, None)])) == \
        "No shipped model has metrics yet."


def test_backbone_titles():
    gpt2 = ModelSpec(modality="text", base={**GPT2, "n_layer": 6, "n_embd": 128}, label_names=["a"], preprocess={})
    assert backbone_title(gpt2) == "GPT-2-style decoder (6 layers, 128 wide), trained from scratch"
    vit = ModelSpec(modality="image", label_names=["a"], preprocess={}, base={
        "model_type": "vit", "num_hidden_layers": 8, "hidden_size": 64, "patch_stem": "conv", "pooling": "mean"})
    assert backbone_title(vit) == ("ViT (8 layers, 64 wide, convolutional patch stem, exits on the mean of the "
                                   "patch tokens), trained from scratch")
    assert backbone_title(ModelSpec(modality="text", base="some/checkpoint", label_names=["a"], preprocess={})) == \
        "some/checkpoint"
