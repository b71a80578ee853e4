"""Fit each exit's temperature on validation and write it into the exit heads of a trained folder.

`epee_demo.training.exit_temperature.temperature_scale_folder` does the work (one temperature per exit, the
lowest validation negative log-likelihood; the traces are rewritten and the fit recorded in
config.json); the figures of metrics.json and the card follow. Run it once on a folder without
learned exits (and before `epee-demo train-exits`, which reads the exits' outputs):

    EPEE_DATA_DIR=../shared/data python scripts/temperature_scale_exits.py assets/ddi
"""

from __future__ import annotations

import sys
from pathlib import Path

from epee_demo.data.tasks import TASKS
from epee_demo.training.exit_temperature import temperature_scale_folder
from epee_demo.training.joint import refresh_folder_figures


def main(folder: Path, task_name: str) -> None:
    task = TASKS[task_name]
    temperatures, traces = temperature_scale_folder(folder)
    refresh_folder_figures(folder, traces, task.load_dataset, task.card_notes)
    print("temperatures per exit " + " ".join(f"{t:.3f}" for t in temperatures))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else Path(sys.argv[1]).name)
