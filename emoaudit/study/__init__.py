"""Studies across models: one audit per model (in one process or on Ray), then the comparison."""
