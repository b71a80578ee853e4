"""epee_demo: an interactive demo of early-exit (multi-exit) transformers in biomedicine.

Flow: data -> model (``model``, ``backbones``) -> per-layer trace (``trace``) ->
exit rules (``policies``) -> figures (``figures``) -> page (``ui``, ``app.py``).
"""
