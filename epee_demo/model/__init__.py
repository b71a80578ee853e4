"""The model: backbones, the multi-exit model, its folder in the Hub layout, the shipped models, the device."""
