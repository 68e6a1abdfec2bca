"""Hyperparameter selection from the few-shot labels alone (see `tuneoff.selection.search`)."""
