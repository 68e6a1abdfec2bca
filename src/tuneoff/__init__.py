"""tuneoff: a fair few-shot comparison of ways to adapt a language model, and what each costs."""

__version__ = "0.1.0"
