"""`mnist-study`: a thin command line over `mnist_fc` (training) and `study.runner` (Optuna).

A user mistake (study.errors.USER_ERRORS) is one line on stderr and exit 2; anything else is a
bug: one line saying so and exit 1, with the traceback under -v. Command modules import torch,
optuna and pandas inside their `run` only, so that `--help` and the command list are instant.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import traceback

from study.commands import best, dashboard, design, evaluate, export, final, report, run, train
from study.errors import USER_ERRORS, environment_error, path_error

# Every command module has `add_parser(sub)`, which sets `func`; a new command is one more entry here.
COMMANDS = [run, train, best, final, evaluate, dashboard, report, export, design]
DEBUG_ENV = "MNIST_STUDY_DEBUG"  # =1: tracebacks as with -v (for runs whose command line is fixed)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, not usage + error
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


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mnist-study")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


VERBOSE_HELP = "show tracebacks of unexpected errors and Optuna's per-trial log lines (before or after COMMAND)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mnist-study",
        description="Hyperparameter studies of fully connected MNIST classifiers.",
        epilog="Run 'mnist-study COMMAND --help' for a command's flags and examples. The storage defaults to "
        "$OPTUNA_STORAGE when set, else sqlite:///studies.db (design: sqlite:///claims.db).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    for command in sub.choices.values():  # -v after the command too; SUPPRESS keeps a -v given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, by name (the --help test loops over these)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


_NUMPY_SCALAR = re.compile(r"\bnp\.(?:float|int|uint|bool_?)\d*\(([^()]*)\)")


def one_line(e: BaseException) -> str:
    """The error's first line, with numpy's `np.float64(12.5)` shown as the user wrote it: 12.5."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return _NUMPY_SCALAR.sub(r"\1", line)


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into a closed pipe stays silent."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while parsing or importing: no traceback either
        print("mnist-study: interrupted", file=sys.stderr)
        code = 130
    if code == 130 and argv is None:  # the program itself, not a test calling main([...])
        # A Ctrl-C that lands inside C code running Python (PyRun_String, e.g. during torch's import) marks
        # the interpreter as killed by SIGINT even though it was handled: it would exit by SIGINT (-2), not 130.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    from study import interrupt, quiet_threads

    interrupt.install()
    quiet_threads.install()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command that refused them ("mnist-study train: error: ..."), as other errors are
        commands(parser).get(args.command or "", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:  # bare `mnist-study`: the command list, as git does
        parser.print_help()
        return 2
    verbose = args.verbose or bool(os.environ.get(DEBUG_ENV))
    args.verbose = verbose
    from study.log import configure_logging

    configure_logging(verbose=verbose)
    try:
        code = args.func(args)
        interrupt.check()  # a Ctrl-C swallowed on the way still stops with 130
        return code
    except USER_ERRORS as e:
        print(f"mnist-study {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist-study {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mnist-study ... | head`: the reader has all it wanted; nothing more to say
        stdout_to_devnull()
        return 128 + signal.SIGPIPE
    except Exception as e:
        if verbose:
            traceback.print_exc()
        if interrupt.caused(e):  # raised by a library's cleanup over a Ctrl-C: the Ctrl-C is the story
            print(f"mnist-study {args.command}: interrupted", file=sys.stderr)
            return 130
        reason = environment_error(e) or path_error(e)
        if reason is not None:
            print(f"mnist-study {args.command}: error: {reason}", file=sys.stderr)
            return 2
        print(
            f"mnist-study {args.command}: bug: {type(e).__name__}: {one_line(e)} "
            "(this is a bug in mnist-study, not your input; run with -v for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
