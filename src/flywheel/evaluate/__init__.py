"""Evaluation: datasets, metrics (incl. LLM judges), the parallel runner and reports."""
