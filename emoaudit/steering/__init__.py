"""Steering stress tests: calibration, steered trials, their judge, regimes and summary."""
