"""Training: every exit jointly, and the learned exit rules on a trained model (not imported by serving)."""
