"""Optimization: DSPy optimizers under a budget, the promotion gate, feedback datasets."""
