"""The tasks' models: the from-scratch ALBERT and GPT-2 organ-system tasks train end to end through
``epee-demo train`` and ``train-exits`` (at a tiny size) and load back as shipped models."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from epee_demo.model.backbones import AlbertBackbone, DecoderBackbone
from epee_demo.tools.cli import main
from epee_demo.model.folder import read_card, read_spec
from epee_demo.model.registry import shipped_models
from epee_demo.data.tasks import TASKS

pytestmark = pytest.mark.slow

TINY = {  # the tasks' own configs, shrunk
    "organ-system-albert": ({"embedding_size": 16, "hidden_size": 32, "num_attention_heads": 2,
                             "intermediate_size": 64, "num_hidden_layers": 3}, AlbertBackbone),
    "organ-system-gpt2": ({"n_embd": 32, "n_head": 2, "n_inner": 64, "n_layer": 3}, DecoderBackbone),
}


@pytest.fixture(scope="module")
def organ_system():
    return TASKS["organ-system-albert"].load_dataset()  # the from-scratch tasks' data (terse texts alone)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_tiny_from_scratch_model_trains_end_to_end_through_its_task(name, organ_system, tmp_path, monkeypatch):
    task = TASKS[name]
    shrink, backbone_class = TINY[name]

    def tiny_spec(label_names):
        spec = task.default_spec(label_names)
        return replace(spec, base={**spec.base, **shrink})

    monkeypatch.setitem(TASKS, name, replace(task, default_spec=tiny_spec))
    folder = tmp_path / name
    assert main(["train", "--task", name, "--out", str(folder), "--epochs", "1", "--max-train-examples", "64",
                 "--quiet"]) == 0
    assert main(["train-exits", "--task", name, "--folder", str(folder), "--epochs", "1", "--alphas", "0.1",
                 "--lambdas", "0.1", "--max-train-examples", "64", "--no-cache", "--quiet"]) == 0

    spec = read_spec(folder)
    assert "trained from scratch" in spec.title and "trained from scratch" in read_card(folder)
    shipped = shipped_models(tmp_path)[name]
    classifier = shipped.classifier
    tokenizer = classifier.preprocessor.tokenizer
    train_texts = list(organ_system.train.first(64).inputs)
    counts = Counter(token for ids in tokenizer(train_texts, add_special_tokens=False)["input_ids"] for token in ids)
    seen_twice = {tokenizer.convert_ids_to_tokens(token) for token, count in counts.items() if count >= 2}
    assert set(spec.preprocess["vocabulary"]) == seen_twice | set(tokenizer.all_special_tokens)  # the 64 used only
    assert spec.base["vocab_size"] == len(spec.preprocess["vocabulary"])
    assert type(classifier.model.backbone) is backbone_class and classifier.num_layers == 3
    stored = shipped.trace("test")
    assert stored.num_examples == len(organ_system.test) and stored.exit_scores  # learned exits' scores kept
    again = classifier.trace(organ_system.test.inputs[:8])
    np.testing.assert_allclose(again.probs, stored.probs[:8], atol=1e-4)  # the vocabulary survives the round trip
