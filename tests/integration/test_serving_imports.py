"""Serving (load a model, run a trace, time an input, the page) imports nothing from training or the CLI tools."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts the page or its server process

ROOT = Path(__file__).resolve().parents[2]
TRAINING_AND_TOOLS = ("epee_demo.training", "epee_demo.tools")  # these packages and every module in them
SERVING_ENTRY_POINTS = ["epee_demo.model.registry", "epee_demo.model.folder", "epee_demo.trace.exit_trace",
                        "epee_demo.trace.early_exit", "epee_demo.trace.timing", "epee_demo.rules.learned_scorers",
                        "epee_demo.ui", "epee_demo.ui.analyze_tab", "epee_demo.ui.explorer_tab",
                        "epee_demo.ui.lesson_tab",
                        "epee_demo.ui.controls", "app"]

LOADED_BY_SERVING = f"""
import importlib, json, sys
for name in {SERVING_ENTRY_POINTS!r}:
    importlib.import_module(name)
print(json.dumps({{name: getattr(module, "__file__", None) for name, module in sys.modules.items()
                  if name == "app" or name.startswith("epee_demo")}}))
"""


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def training_or_tools(names) -> set[str]:
    """The names among ``names`` that are a training or tools package or a module inside one."""
    return {name for name in names if any(name == p or name.startswith(p + ".") for p in TRAINING_AND_TOOLS)}


def test_the_banned_names_cover_every_module_of_those_packages():
    assert training_or_tools(["epee_demo.training.exit_temperature", "epee_demo.tools.cli", "epee_demo.tools",
                              "epee_demo.trace.timing", "epee_demo.trainingish"]) == {
        "epee_demo.training.exit_temperature", "epee_demo.tools.cli", "epee_demo.tools"}


def test_serving_modules_import_no_training_or_cli_code():
    result = subprocess.run([sys.executable, "-c", LOADED_BY_SERVING], cwd=ROOT, capture_output=True, text=True,
                            timeout=240, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(SERVING_ENTRY_POINTS) <= set(loaded)
    assert not training_or_tools(loaded), sorted(training_or_tools(loaded))
    for name, file in loaded.items():  # imports inside functions too, which importing does not run
        if file:
            banned = training_or_tools(imported_names(Path(file)))
            assert not banned, f"{name} imports {sorted(banned)}"
