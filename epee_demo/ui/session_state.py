"""Gradio's per-session state with each block's entry made when first read, not all at a session's start.

Gradio 6.31 (``gradio.state_holder.SessionState``) builds, on a session's first event and on the
event loop, the config of every block of the page (about 44 ms of CPU for this page's ~441
blocks, which every other request waits behind). ``LazySessionState`` holds the same entries,
each built from the same block the first time it is read (0.08 ms per new session): what Gradio
reads of a session (its ``gr.State`` values, the components an event updated, the whole config
for a deep link) is what its own state gives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, MutableMapping
from types import SimpleNamespace
from typing import Any

import gradio
import gradio.blocks
import gradio.route_utils
import gradio.state_holder
from gradio.state_holder import SessionState

_UNBUILT = object()


class LazyBlockConfigs(MutableMapping):
    """Block id -> that block's config in one session, each built when first read from the block
    the session started with; ids keep Gradio's order, and an entry set is kept as set."""

    def __init__(self, blocks_config, ids: Iterable[int]):
        self._configs: dict[int, Any] = dict.fromkeys(ids, _UNBUILT)
        self._storing = threading.Lock()  # a worker thread (a deep link) may read what the event loop sets
        self._blocks = dict(blocks_config.blocks)  # the blocks as the session started, which Gradio's state reads
        self._config_for_block = blocks_config.config_for_block

    def __getitem__(self, block_id: int) -> Any:
        config = self._configs[block_id]
        if config is _UNBUILT:
            built = self._config_for_block(block_id, [], self._blocks[block_id])
            with self._storing:  # an entry set meanwhile (an updated value) is kept, not overwritten
                config = self._configs[block_id]
                if config is _UNBUILT:
                    config = self._configs[block_id] = built
        return config

    def __setitem__(self, block_id: int, config: Any):
        with self._storing:
            self._configs[block_id] = config

    def __delitem__(self, block_id: int):
        del self._configs[block_id]

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._configs

    def __iter__(self) -> Iterator[int]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)


class LazySessionState(SessionState):
    """Gradio's ``SessionState`` whose ``config_values`` are a ``LazyBlockConfigs`` over the same ids."""

    def __init__(self, blocks):
        # Gradio's own __init__ for every other field, over no blocks (its config loop then does nothing).
        super().__init__(SimpleNamespace(default_config=blocks.default_config, blocks={}))
        self.config_values = LazyBlockConfigs(self.blocks_config,
                                              (k for k in self.blocks_config.blocks if k in blocks.blocks))


TESTED_GRADIO = "6.31."  # the Gradio release whose SessionState this was written against and tested with


def install_lazy_session_state() -> bool:
    """On the tested Gradio release, make the session states the page's events build (per session,
    for a call without one, in a direct ``process_api``) ``LazySessionState``s: the modules that build
    one name it at their top level (Gradio's MCP server, which the page does not start, keeps its own).
    Another release keeps Gradio's own state. Returns whether it was installed."""
    if not gradio.__version__.startswith(TESTED_GRADIO):
        return False
    for module in (gradio.state_holder, gradio.route_utils, gradio.blocks):
        module.SessionState = LazySessionState
    return True
