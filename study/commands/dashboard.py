"""`mnist-study dashboard`: optuna-dashboard on the study storage."""

from __future__ import annotations

import argparse

from study.commands.args import add_study_args, port_int
from study.defaults import DASHBOARD_HOST, DASHBOARD_PORT
from study.errors import UserError

EXAMPLE = """example:
  mnist-study dashboard --storage sqlite:///studies.db --port 8080   # then open http://127.0.0.1:8080"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve optuna-dashboard for the storage (127.0.0.1 by default)",
        description="Start optuna-dashboard on a study storage.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p, name=False)
    p.add_argument("--host", default=DASHBOARD_HOST, help=f"bind address (default {DASHBOARD_HOST}: this machine only)")
    p.add_argument("--port", type=port_int, default=DASHBOARD_PORT, help=f"port to serve on (default {DASHBOARD_PORT})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from study.storage import open_storage, redact

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UserError("optuna-dashboard is not installed (pip install optuna-dashboard)") from None
    storage = open_storage(args.storage, create=False)
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {redact(args.storage)} (Ctrl-C stops)", flush=True)
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0
