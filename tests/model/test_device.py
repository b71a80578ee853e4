"""The ZeroGPU decorator: a no-op without the ``spaces`` package, ``spaces.GPU`` with it."""

import importlib
import sys
import types

import epee_demo.model.device


def test_without_spaces_the_function_is_returned_as_it_is(monkeypatch):
    monkeypatch.setattr(epee_demo.model.device, "spaces", None)

    def run(x):
        return x + 1

    assert epee_demo.model.device.on_gpu(run) is run


def test_with_spaces_the_function_goes_through_spaces_gpu(monkeypatch):
    calls = []

    def gpu(duration):
        def wrap(fn):
            def wrapped(*args):
                calls.append(duration)
                return fn(*args)
            return wrapped
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    module = importlib.reload(epee_demo.model.device)
    try:
        wrapped = module.on_gpu(lambda x: x * 2)
        assert wrapped(21) == 42
        assert calls == [module.GPU_SECONDS]
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(epee_demo.model.device)
