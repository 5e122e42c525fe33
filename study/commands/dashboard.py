"""`mnist-study dashboard`: optuna-dashboard on the study storage."""

from __future__ import annotations

import argparse
import socket

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


def check_bindable(host: str, port: int) -> None:
    """One-line UserError unless a server can listen on host:port now.

    optuna-dashboard's server reports a taken port only after printing that it is listening; checked
    first, the user sees the one reason and no "Listening on ..." lines that are not true.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # the server's choice (bottle's WSGIRefServer)
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
            s.bind(addr)
    except OSError as e:
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def run(args: argparse.Namespace) -> int:
    from study.storage import open_storage, redact

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UserError("optuna-dashboard is not installed (pip install optuna-dashboard)") from None
    storage = open_storage(args.storage, create=False)
    check_bindable(args.host, args.port)
    where = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address is bracketed in a URL
    print(f"optuna-dashboard on http://{where}:{args.port} for {redact(args.storage)} (Ctrl-C stops)", flush=True)
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0
