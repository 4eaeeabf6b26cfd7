"""Per-layer quantisation sensitivity measured on calibration data."""
