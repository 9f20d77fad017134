"""Signals: one module per feature, each mapping chunks to values in [0, 1]."""
