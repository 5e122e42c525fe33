"""`mnist-study`: a thin command line over `mnist_fc` (training) and `study` (Optuna).

Every user error becomes one line on stderr and a non-zero exit; set MNIST_STUDY_DEBUG=1
to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from study.commands import best, dashboard, design, evaluate, export, final, report, run, train
from study.errors import UserError

COMMANDS = (run, train, best, final, evaluate, dashboard, report, export, design)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        # argparse drops a "--" given as an option's value (--epochs=--), leaving the option a list
        # or its default: found by the fuzz tests, it ran a whole study with default settings.
        args = sys.argv[1:] if args is None else list(args)
        for a in args:
            flag, eq, value = a.partition("=")
            if a.startswith("--") and eq and value == "--":
                self.error(f"argument {flag}: expected a value, not '--'")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mnist-study", description="Hyperparameter studies of fully connected MNIST classifiers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Optuna's per-trial log lines")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


class _NoTraceback(logging.Filter):
    """Optuna logs a failed trial's traceback (Ctrl-C included); the CLI's promise is one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(logging.INFO if args.verbose else logging.WARNING)
    if not (args.verbose or os.environ.get("MNIST_STUDY_DEBUG")):
        for handler in logging.getLogger("optuna").handlers:
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())
    try:
        return args.func(args)
    except (UserError, ValueError) as e:  # DataError is a ValueError
        print(f"mnist-study {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist-study {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MNIST_STUDY_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(
            f"mnist-study {args.command}: internal error: {type(e).__name__}: {msg} "
            "(MNIST_STUDY_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
