"""The command line: thin; it parses arguments, calls the functions the Python API exposes
(`tuneoff.experiment` to plan and run, `tuneoff.results` to read a folder; `tuneoff.api` wraps the
same ones) and prints what they return. The commands live in `running` (run, sweep), `info`
(validate, ls) and `results` (show, recommend, report, repair, evaluate); `main` is the `tuneoff`
entry point."""
from __future__ import annotations

import os
import signal
import sys

# each module adds its commands to the app, in the order --help lists them
from tuneoff.cli import running, info, results  # noqa: F401, I001
from tuneoff.cli.base import app, err, say
from tuneoff.cli.display import brief as _brief  # noqa: F401 - the line a finished run gets
from tuneoff.signals import replaced

__all__ = ["app", "main", "quiet_libraries"]


class Interrupted(BaseException):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) outside the computing of runs, where `tuneoff.signals`
    handles it. Not a KeyboardInterrupt, which the CLI framework turns into a bare exit before
    tuneoff could say what was kept."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


def quiet_libraries() -> None:
    """Keep library messages that are not the user's to act on off their terminal: transformers'
    load reports (they go to the run record) and progress bars, and the FutureWarning transformers
    raises when peft reads `is_gradient_checkpointing`."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    try:
        with replaced(_on_signal):  # a signal the process ignores (nohup: SIGHUP) stays ignored
            app()
    except (Interrupted, KeyboardInterrupt) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        say(err, f"stopped by {signal.Signals(signum).name}; finished runs are in the results store: the same "
                 "command goes on from there")
        sys.exit(128 + signum)
