"""Print the EPEE paper's backbone x task table (per-exit test metric, EPEE at its default, the full model)
from the shipped folders' metrics.json, as Markdown; with --readme, also write it into the README between
its markers. Example:

    python scripts/backbone_table.py
    python scripts/backbone_table.py --readme README.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from epee_demo.analysis.backbone_table import backbone_table
from epee_demo.model.registry import ASSETS_DIR, shipped_models

START, END = "<!-- backbone-table:start -->", "<!-- backbone-table:end -->"


def write_into(readme: Path, table: str) -> None:
    """Replace what stands between the README's two markers with ``table``."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} markers to write the table between")
    block = f"{START}\n{table}\n{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=ASSETS_DIR, help="folder of shipped models")
    parser.add_argument("--readme", type=Path, help="also write the table into this README between its markers")
    args = parser.parse_args(argv)
    table = backbone_table(model.folder for model in shipped_models(args.assets).values())
    print(table)
    if args.readme:
        write_into(args.readme, table)
        print(f"written into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
