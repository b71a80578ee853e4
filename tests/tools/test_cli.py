"""The ``epee-demo`` command end to end on real data: train, train-exits and bench, each for real but small."""

import json
from pathlib import Path

import pytest

from epee_demo.tools.cli import main
from epee_demo.training.learned_exits import LEARNED_RULES
from epee_demo.trace.exit_trace import ExitTrace
from tests.data.test_medmnist import needs_data

pytestmark = [pytest.mark.slow, needs_data]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A pneumonia model trained for one epoch on 64 images by ``epee-demo train``."""
    folder = tmp_path_factory.mktemp("cli") / "pneumonia"
    assert main(["train", "--task", "pneumonia", "--out", str(folder), "--epochs", "1",
                 "--max-train-examples", "64", "--quiet"]) == 0
    return folder


def test_train_writes_checkpoint_traces_metrics_and_card(trained):
    for name in ("config.json", "model.safetensors", "trace_val.npz", "trace_test.npz", "metrics.json",
                 "README.md"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["split_sizes"] == {"train": 64, "val": 524, "test": 624}
    assert len(metrics["test_accuracy_per_layer"]) == 8
    assert ExitTrace.load(trained / "trace_test.npz").num_examples == 624
    assert "CC BY 4.0" in (trained / "README.md").read_text()


def test_train_repeats_with_the_same_seed(trained, tmp_path):
    """The from-scratch weights are seeded too, so a second run gives the same model."""
    from safetensors.numpy import load_file

    again = tmp_path / "pneumonia"
    assert main(["train", "--task", "pneumonia", "--out", str(again), "--epochs", "1",
                 "--max-train-examples", "64", "--quiet"]) == 0
    first, second = load_file(trained / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)


def test_train_exits_then_bench(trained, tmp_path, capsys):
    assert main(["train-exits", "--task", "pneumonia", "--folder", str(trained), "--epochs", "1",
                 "--alphas", "0.1", "--lambdas", "0.1", "--max-train-examples", "64", "--no-cache",
                 "--quiet"]) == 0
    assert (trained / "learned_exits.safetensors").is_file()
    assert sorted(ExitTrace.load(trained / "trace_val.npz").exit_scores) == sorted(LEARNED_RULES)
    out = tmp_path / "bench.json"
    assert main(["bench", str(trained), "--max-examples", "4", "--batch-sizes", "2", "--out", str(out)]) == 0
    model = json.loads(out.read_text())["models"][0]
    assert model["name"] == "pneumonia" and model["num_examples"] == 4
    assert {rule["rule"] for rule in model["rules"]} >= {"epee", *LEARNED_RULES}
    assert "embedding alone" in capsys.readouterr().out


def test_bench_of_a_folder_of_no_known_task_says_so(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "mystery")]) == 2
    assert "pass --task" in capsys.readouterr().err


def test_train_takes_the_keep_rule_the_stem_depth_and_the_layers_from_the_command_line(tmp_path):
    folder = tmp_path / "breast"
    assert main(["train", "--task", "breast", "--out", str(folder), "--epochs", "2", "--max-train-examples", "32",
                 "--keep-epoch-by", "metric_and_auc", "--stem-convs-per-stage", "2", "--layers", "3", "--quiet"]) == 0
    config = json.loads((folder / "config.json").read_text())
    assert config["base"]["stem_convs_per_stage"] == 2 and config["base"]["num_hidden_layers"] == 3
    assert config["title"].endswith("(ViT with a convolutional stem, trained from scratch, 3 exits)")
    assert ExitTrace.load(folder / "trace_test.npz").num_layers == 3
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train_config"]["keep_epoch_by"] == "metric_and_auc"
    assert all("epoch_score" in record for record in metrics["history"])


def test_the_stem_depth_is_refused_for_a_model_without_a_conv_stem(tmp_path, capsys):
    assert main(["train", "--task", "retina", "--out", str(tmp_path / "r"), "--stem-convs-per-stage", "2",
                 "--quiet"]) == 2
    assert "convolutional stem" in capsys.readouterr().err


def test_layers_other_than_the_start_checkpoints_are_refused_with_a_message(tmp_path, capsys):
    assets = Path(__file__).resolve().parents[2] / "assets" / "retina"
    assert main(["train", "--task", "retina", "--out", str(tmp_path / "r"), "--layers", "12", "--start-from",
                 str(assets), "--epochs", "1", "--max-train-examples", "8", "--quiet"]) == 2
    assert "has 8 exits and this model 12: a checkpoint of another depth does not fit" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_train_starts_on_another_tasks_backbone_and_records_it(tmp_path, capsys):
    assets = Path(__file__).resolve().parents[2] / "assets"
    folder = tmp_path / "breast"
    assert main(["train", "--task", "breast", "--out", str(folder), "--backbone-from", str(assets / "pneumonia"),
                 "--epochs", "1", "--max-train-examples", "16", "--quiet"]) == 0
    assert f"starting on the backbone of {assets / 'pneumonia'}" in capsys.readouterr().out
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train_config"]["backbone_from"] == str(assets / "pneumonia")
    assert json.loads((folder / "config.json").read_text())["label_names"] == ["malignant", "normal or benign"]
    assert f"Started on the backbone of `{assets / 'pneumonia'}`" in (folder / "README.md").read_text()
    assert main(["train", "--task", "breast", "--out", str(tmp_path / "b2"), "--backbone-from", str(assets / "retina"),
                 "--epochs", "1", "--max-train-examples", "8", "--quiet"]) == 2
    assert "--backbone-from" in (err := capsys.readouterr().err) and "another architecture" in err
    assert not (tmp_path / "b2").exists()
    with pytest.raises(SystemExit):
        main(["train", "--task", "breast", "--out", str(tmp_path / "b3"), "--backbone-from", str(assets / "pneumonia"),
              "--start-from", str(assets / "breast")])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_backbone_under_another_licence_than_the_tasks_is_refused(tmp_path, capsys, monkeypatch):
    import dataclasses
    import shutil

    from epee_demo.data import tasks

    source = tmp_path / "pneumonia-nc"
    shutil.copytree(Path(__file__).resolve().parents[2] / "assets" / "pneumonia", source)
    config = json.loads((source / "config.json").read_text())
    config["extra"]["license"] = "cc-by-nc-4.0"
    (source / "config.json").write_text(json.dumps(config))
    breast = tasks.TASKS["breast"]

    def licensed_spec(*args, **kwargs):
        spec = breast.default_spec(*args, **kwargs)
        spec.extra["license"] = "cc-by-4.0"
        return spec

    monkeypatch.setitem(tasks.TASKS, "breast", dataclasses.replace(breast, default_spec=licensed_spec))
    assert main(["train", "--task", "breast", "--out", str(tmp_path / "b"), "--backbone-from", str(source),
                 "--epochs", "1", "--max-train-examples", "8", "--quiet"]) == 2
    assert "under cc-by-nc-4.0 and this task's model is under cc-by-4.0" in capsys.readouterr().err
