"""epee_demo: an interactive demo of early-exit (multi-exit) transformers in biomedicine.

Flow, one subpackage each: ``data`` -> ``model`` -> per-layer ``trace`` -> exit ``rules`` ->
``analysis`` -> ``figures`` -> page (``ui``, ``app.py``); ``training`` and ``tools`` stand apart.

``from epee_demo import MultiExitModel; MultiExitModel.from_pretrained(folder_or_hub_id)``
loads a shipped model (imported on first use, so that ``import epee_demo.<module>`` stays light).
"""


def __getattr__(name: str):
    if name == "MultiExitModel":
        from epee_demo.model.multi_exit import MultiExitModel

        return MultiExitModel
    raise AttributeError(f"module 'epee_demo' has no attribute {name!r}")
