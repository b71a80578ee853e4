"""Analysis of traces: one example layer by layer, and a whole split (trade-off, overthinking, calibration)."""
