"""Errors meant for the person using the demo (no heavy imports, so NumPy-only modules can raise them)."""


class InputError(ValueError):
    """Input the demo cannot analyze; the message is meant for the person who gave it."""


class CheckpointError(RuntimeError):
    """A model folder that is missing or cannot be read; the message names the file."""
