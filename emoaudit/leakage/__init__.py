"""Cross-lingual leakage: scripts and languages of steered text, and the logit lens."""
