"""Hugging Face ZeroGPU support: ``on_gpu`` marks the functions that run a model.

On a Space the ``spaces`` package is installed and ``spaces.GPU`` attaches a GPU to
each call of a marked function; everywhere else ``on_gpu`` returns the function as it
is. Importing this module first (``app.py`` does) imports ``spaces`` before torch,
which ZeroGPU requires; no torch or gradio import happens here.
"""

from __future__ import annotations

from typing import Callable, TypeVar

try:
    import spaces
except ImportError:
    spaces = None

GPU_SECONDS = 30  # the longest a model call may hold the GPU (one example takes far less)

F = TypeVar("F", bound=Callable)


def on_gpu(fn: F) -> F:
    """``fn`` wrapped in ``spaces.GPU`` when the ``spaces`` package is installed, else ``fn``."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_SECONDS)(fn)
