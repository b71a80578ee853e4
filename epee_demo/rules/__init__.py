"""Exit rules: the catalogue (pure NumPy) and the learned exit scorers a served model loads."""
