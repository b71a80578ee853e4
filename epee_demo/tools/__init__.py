"""The ``epee-demo`` command and its benchmark (not imported by serving)."""
