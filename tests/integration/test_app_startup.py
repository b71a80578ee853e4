"""Start-up: a broken model file stops app.py with one line naming it; only the first model loads at build."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from epee_demo.errors import CheckpointError
from epee_demo.model.registry import ShippedModel
from epee_demo.ui import build_demo

pytestmark = pytest.mark.integration  # starts the page or its server process

ROOT = Path(__file__).resolve().parents[2]


def start_app(assets: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EPEE_ASSETS_DIR": str(assets), "GRADIO_SERVER_NAME": "127.0.0.1"}
    return subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def no_model(folder: Path) -> Path:
    return folder


def weights_missing(folder: Path) -> Path:
    (folder / "organ-system" / "model.safetensors").unlink()
    return folder / "organ-system" / "model.safetensors"


def config_corrupt(folder: Path) -> Path:
    (folder / "organ-system" / "config.json").write_text('{"modality": "text", "base": ')
    return folder / "organ-system" / "config.json"


def trace_corrupt(folder: Path) -> Path:
    path = folder / "organ-system" / "trace_test.npz"
    path.write_bytes(path.read_bytes()[:100])
    return path


@pytest.mark.parametrize("damage, message", [
    (no_model, "no shipped model found in"),
    (weights_missing, "checkpoint weights not found"),
    (config_corrupt, "checkpoint config is corrupt"),
    (trace_corrupt, "cached trace is corrupt"),
])
def test_a_broken_model_folder_stops_the_app_with_one_line(tiny_shipped_model, tmp_path, damage, message):
    assets = tmp_path / "assets"
    assets.mkdir()
    if damage is not no_model:
        shutil.copytree(tiny_shipped_model.folder, assets / "organ-system")
    named = damage(assets)
    result = start_app(assets)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("epee-demo cannot start: ") and message in last_line
    assert str(named) in last_line


def test_only_the_first_classifier_loads_when_the_page_is_built(tiny_shipped_model, tiny_image_shipped_model):
    fresh = {name: ShippedModel(model.task, model.folder)
             for name, model in (("organ-system", tiny_shipped_model), ("pneumonia", tiny_image_shipped_model))}
    build_demo(fresh)
    assert "classifier" in fresh["organ-system"].__dict__  # its example is analyzed on the opening page
    assert "classifier" not in fresh["pneumonia"].__dict__  # loaded when its task is first chosen


def test_a_model_loaded_later_has_its_weights_checked_at_start_up(tiny_shipped_model, tiny_image_shipped_model, tmp_path):
    shutil.copytree(tiny_image_shipped_model.folder, tmp_path / "pneumonia")
    (tmp_path / "pneumonia" / "model.safetensors").unlink()
    later = ShippedModel(tiny_image_shipped_model.task, tmp_path / "pneumonia")
    with pytest.raises(CheckpointError, match="checkpoint weights not found"):
        build_demo({"organ-system": tiny_shipped_model, "pneumonia": later})
