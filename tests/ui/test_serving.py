"""The served app's lifespan (``ui.serving``): start-up objects frozen out of full GC passes while it serves."""

import asyncio
import gc

from epee_demo.ui import serving
from epee_demo.ui.files import AppFolder
from tests.conftest import launched_demo


class FolderApp:
    """A stand-in for Gradio's app: its Blocks hold the page's folder."""

    def __init__(self, folder: AppFolder):
        self.app_folder = folder

    def get_blocks(self):
        return self


def tracked(thing) -> bool:
    """Whether the collector's generations hold ``thing`` (frozen objects are in none of them)."""
    return any(other is thing for other in gc.get_objects())


def test_what_exists_at_start_is_frozen_until_shutdown_and_what_serving_makes_is_not(tmp_path):
    folder = AppFolder(tmp_path / "app")
    built_at_start = {"model": [1, 2, 3]}
    made = {}

    async def serve():
        async with serving(FolderApp(folder)):
            made["frozen"], made["count"] = not tracked(built_at_start), gc.get_freeze_count()
            made["later"] = later = {"trace": [4]}
            made["later_tracked"] = tracked(later)

    assert tracked(built_at_start)
    asyncio.run(serve())
    assert made["frozen"] and made["count"] > 10_000 and made["later_tracked"]
    assert tracked(built_at_start) and gc.get_freeze_count() == 0  # back to the collector at shutdown
    assert not folder.root.exists()  # the folder is still removed at shutdown


def test_the_launched_page_serves_with_its_start_up_objects_frozen(tiny_shipped_model):
    with launched_demo({"organ-system": tiny_shipped_model}) as demo:
        assert gc.get_freeze_count() > 10_000 and not tracked(demo)
    assert gc.get_freeze_count() == 0
