"""What every command shares: the app (its --version, -h on every command), the consoles, failing
with a clear message, loading a config, and reading a results folder. The work is done by the
functions the Python API exposes (`tuneoff.experiment`, `tuneoff.results`); the commands parse
arguments and print what those return."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tuneoff.config import ConfigError
from tuneoff.escape import term
from tuneoff.report.terminal import say

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},  # every command's -h too
                  help="tuneoff: which way of adapting a language model works best with a few labels, and at what cost.")
console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from tuneoff import __version__

        console.print(f"tuneoff {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the version and exit")) -> None:
    """tuneoff: which way of adapting a language model works best with a few labels, and at what cost.
    The same functions are a Python API: `help(tuneoff)`, `from tuneoff.api import run, sweep, load`."""


def fail(msg: str, code: int = 2) -> None:
    say(err, f"[bold red]error:[/] {term(msg)}")
    raise typer.Exit(code)


def message(e: Exception) -> str:
    # str(KeyError) is the repr of its argument: quotes and escaped newlines
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


def split_args(config: Optional[str], overrides: Optional[list[str]]) -> tuple[Optional[str], list[str]]:
    """(config file, overrides): a first argument that is key=value and no file is an override."""
    overrides = list(overrides or [])
    if config and "=" in config and not _is_file(config):
        return None, [config, *overrides]
    return config, overrides


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # e.g. a key=value longer than a file name may be
        return False


def load(config: Optional[str], overrides: Optional[list[str]]):
    """The run config of a command line's config file and key=value overrides, checked before any run
    (`tuneoff.experiment.config_of`, as `tuneoff.api.run` reads it)."""
    from tuneoff.experiment import config_of

    path, ov = split_args(config, overrides)
    try:
        return config_of(path, ov)
    except (ConfigError, ValueError, KeyError) as e:
        fail(message(e))


@contextmanager
def reading(folder):
    """The results of `folder` (`tuneoff.results.Results`), opened only to read them (show,
    recommend, report): nothing in the folder is created or written. A folder without results, or a
    store that fails while it is read (full disk, locked, damaged), is a clear error (exit 2)."""
    from tuneoff.results import Results
    from tuneoff.store import StoreError

    try:
        res = Results.open(folder)
    except (FileNotFoundError, StoreError) as e:
        fail(str(e))
    try:
        yield res
    except StoreError as e:
        fail(str(e))


def warn(notes: list[str]) -> None:
    """Warn of what the reads of a store found (`Results.notes`): rows that could not be read, and
    manifests that cannot be read although their row is intact."""
    for note in notes:
        say(err, f"[yellow]warning:[/] {term(note)}")


def print_recommendation(rec, scope: str = "") -> None:
    """The answer within a budget (a `tuneoff.results.Recommendation`), as `tuneoff recommend` and the
    report give it; `scope` says which runs it is over."""
    from tuneoff.report.terminal import print_blocks

    console.rule("recommendation")
    if scope:
        say(console, term(f"over {scope}"))
    print_blocks(console, rec.blocks)
