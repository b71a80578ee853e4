"""The per-layer trace of a model's exits, real early exit, and the timing of one input."""
