"""The README's layout tree lists every module of the package, and only modules that exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_paths() -> set[str]:
    """The files the README's Layout tree names under epee_demo/, as paths from the repository root."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Layout\n.*?```text\n(.*?)```", readme, re.S).group(1)
    stack, paths = [], set()
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name:
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        del stack[depth:]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        elif name.endswith(".py") and stack[:1] == ["epee_demo"]:
            paths.add("/".join(stack + [name]))
    return paths


def has_code(path: Path) -> bool:
    """More than a docstring (a package's __init__.py that only names the package is left out of the tree)."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def test_the_layout_tree_is_the_package():
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "epee_demo").rglob("*.py")
               if p.name != "__init__.py" or has_code(p)}
    listed = tree_paths()
    assert modules - listed == set(), "modules missing from the README's tree"
    assert listed - modules == set(), "the README's tree names modules that do not exist"
