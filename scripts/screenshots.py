"""Screenshots of each task's Analyze view (as the page opens: its first example analyzed) into docs/.

Starts the page on the shipped models in-process on loopback and drives headless Debian chromium
(Playwright): one PNG per model, chosen on the page's task and backbone selector, from the selector
down to the end of that model's Analyze view, ``docs/analyze-<task>.png``, at 1280 px wide, and the
first model's at 400 px wide (``docs/analyze-organ-system-400px.png``).

    python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from epee_demo.model.registry import shipped_models
    from epee_demo.ui import build_demo, launch_options
    from epee_demo.ui.selector import backbone_name, task_groups, task_of, task_title

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = shipped_models()
    groups = task_groups(models)
    demo = build_demo(models)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            for width in (1280, 400):
                page = browser.new_page(viewport={"width": width, "height": 1000})
                page.goto(demo.local_url)
                page.get_by_text("Research and teaching only").first.wait_for(timeout=60_000)
                for model in models.values() if width == 1280 else [next(iter(models.values()))]:
                    task = task_of(model)
                    page.locator("#task_choice input").first.click()
                    page.get_by_role("option", name=task_title(models, task, groups[task])).first.click()
                    if len(groups[task]) > 1:
                        page.locator("#backbone_choice").get_by_label(backbone_name(model)).check()
                    panel = page.locator(f"#analyze-{model.task.name}")
                    panel.locator(".js-plotly-plot").last.wait_for(state="visible", timeout=60_000)
                    page.wait_for_timeout(1_500)  # let plotly finish drawing
                    name = f"analyze-{model.task.name}{'' if width == 1280 else '-400px'}.png"
                    top, bottom = page.evaluate(  # in page coordinates, whatever the scroll
                        "([a, b]) => [document.querySelector(a).getBoundingClientRect().top + scrollY, "
                        "document.querySelector(b).getBoundingClientRect().bottom + scrollY]",
                        ["#selector", f"#analyze-{model.task.name}"])
                    page.screenshot(path=str(out / name), full_page=True,
                                    clip={"x": 0, "y": top, "width": width, "height": bottom - top})
                    print(out / name)
                page.close()
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
