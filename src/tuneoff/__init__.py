"""tuneoff: a fair few-shot comparison of ways to adapt a language model, and what each costs.

The same comparison, on the command line (`tuneoff --help`) or in Python:

    from tuneoff.api import run, sweep, load

    res = sweep("examples/quick.yaml", "methods=[finetune,head]")   # as `tuneoff sweep`
    res.table()                        # mean ± std over seeds per method, shots and eval set
    res.runs()                         # one row per run: settings, scores, costs
    rec = res.recommend(max_train_time="5m")   # the best method within a budget, and the cheapest
    res.plot("curves")                 # the report's figures
    res.report("report.html")          # the report, as `tuneoff report` writes it

    res = load("results/quick")        # a results folder written before

Where to read on: `help(tuneoff.api)` (run, sweep, plan, load), `help(tuneoff.results.Results)`,
docs/api.md, and examples/compare.ipynb. `tuneoff.run`, `tuneoff.load`, `tuneoff.Results` and
`tuneoff.Recommendation` are the same objects (`tuneoff.sweep` is the module that reads sweep
files; the function is `tuneoff.api.sweep`).
"""

__version__ = "0.1.0"

# re-exported on first use, so that `import tuneoff` loads nothing (imported by name: the package
# itself is no layer of its own, and tuneoff.api imports the whole stack below it)
_LAZY = {"api": None, "run": "api", "load": "api", "Results": "results", "Recommendation": "results"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tuneoff' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"tuneoff.{_LAZY[name] or name}")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
