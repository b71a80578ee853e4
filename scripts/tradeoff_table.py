"""Print, as Markdown, every exit rule's fastest setting that loses at most one point of the task metric.

Three ways of choosing, all reported on the test split: on test itself (optimistic), on
validation (honest), and by conformal risk control on validation (a guarantee on the expected
disagreement with the full model). Example:

    python scripts/tradeoff_table.py assets/organ-system
    python scripts/tradeoff_table.py assets/organ-system --max-loss 0.02 --csv-dir /tmp/tradeoff
"""

from __future__ import annotations

import argparse
from pathlib import Path

from epee_demo.model import folder
from epee_demo.analysis import whole_split


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="model folder (its cached val and test traces are read)")
    parser.add_argument("--max-loss", type=float, default=0.01,
                        help="budget on the task metric in metrics.json, accuracy by default (0.01 = one point)")
    parser.add_argument("--csv-dir", type=Path, help="also write every rule's grid (operating points) as CSV here")
    args = parser.parse_args(argv)
    metric = folder.read_metrics(args.folder).get("metric", "accuracy")
    val = whole_split.prepare(folder.read_trace(args.folder, "val"), metric)
    test = whole_split.prepare(folder.read_trace(args.folder, "test"), metric)
    val_frontiers, test_frontiers = whole_split.all_frontiers(val), whole_split.all_frontiers(test)
    rows = whole_split.tradeoff_rows(val, test, args.max_loss, val_frontiers, test_frontiers)
    print(f"{args.folder}: validation {val.num_examples}, test {test.num_examples} examples, "
          f"{test.num_layers} layers\n")
    print(whole_split.tradeoff_markdown(rows, args.max_loss))
    if args.csv_dir:
        args.csv_dir.mkdir(parents=True, exist_ok=True)
        whole_split.operating_points_csv(val_frontiers, args.csv_dir / "operating_points_val.csv")
        whole_split.operating_points_csv(test_frontiers, args.csv_dir / "operating_points_test.csv")
        print(f"CSV written to {args.csv_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
