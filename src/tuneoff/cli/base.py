"""What every command shares: the app, the consoles, failing with a clear message, loading a
config, and opening a results store."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tuneoff.config import ConfigError, load_config
from tuneoff.escape import term

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="tuneoff: which way of adapting a language model works best with a few labels, and at what cost.")
console = Console()
err = Console(stderr=True)


def fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {term(msg)}", highlight=False)
    raise typer.Exit(code)


def message(e: Exception) -> str:
    # str(KeyError) is the repr of its argument: quotes and escaped newlines
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


def _split_args(config: Optional[str], overrides: Optional[list[str]]) -> tuple[Optional[str], list[str]]:
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
    path, ov = _split_args(config, overrides)
    try:
        cfg = load_config(path, ov)
        from tuneoff.runner import preflight

        preflight(cfg)  # an unknown task, eval set, pattern or model is an error before any run starts
        return cfg
    except (ConfigError, ValueError, KeyError) as e:
        fail(message(e))


def open_results(folder, write: bool = True):
    """The results store of `folder`. To write (runs): checked (damaged, unwritable, full) before
    any run starts, created if missing. To read (show, report, a dry run): it must exist, and it is
    opened read-only: nothing in the folder is created or written (`reading`). A store that cannot
    be used is a clear error."""
    from tuneoff.claims import lease_seconds
    from tuneoff.store import StoreError, check_writable, open_store

    try:
        if write:
            check_writable(folder)
            lease_seconds()  # a malformed TUNEOFF_LEASE_S is an error now, not at the first claim
        return open_store(folder, must_exist=not write)
    except (FileNotFoundError, StoreError) as e:
        fail(str(e))


@contextmanager
def reading(folder):
    """The results store of `folder`, opened only to read it (show, recommend, report): a store
    that fails while it is read (full disk, locked, damaged) is a clear error (exit 2)."""
    from tuneoff.store import StoreError

    store = open_results(folder, write=False)
    try:
        yield store
    except StoreError as e:
        fail(str(e))


def warn_bad_rows(store) -> None:
    """Warn of what the reads of `store` found: rows that could not be read, and manifests that
    cannot be read although their row is intact."""
    for note in (store.bad_rows_note(), store.broken_manifests_note()):
        if note:
            err.print(f"[yellow]warning:[/] {term(note)}", highlight=False)


def print_recommendation(records: list[dict], budget, scope: str = "") -> None:
    """The answer, within `budget`, for these records (as `tuneoff recommend` and the report give it);
    `scope` says which runs they are."""
    from tuneoff.report.answer import recommendation_blocks
    from tuneoff.report.frame import to_frame
    from tuneoff.report.terminal import print_blocks

    console.rule("recommendation")
    if scope:
        console.print(term(f"over {scope}"), highlight=False)
    print_blocks(console, recommendation_blocks(to_frame(records), budget)[0])
