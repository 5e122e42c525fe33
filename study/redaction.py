"""Storage URLs and command lines with their passwords masked, for printing and for files that get shared.

sqlalchemy-free, so that `--help` (which shows the default storage) stays fast; `study.storage.redact`
applies the same masking to a URL SQLAlchemy has parsed.
"""

from __future__ import annotations

import re

_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)  # libpq takes ?password=... too


def mask_query_password(url: str) -> str:
    """The URL with a `?password=` (or `&password=`) value replaced by ***."""
    return _QUERY_PASSWORD.sub(r"\1***", url)


def redact_url(url: str) -> str:
    """The URL without its password, whether user:PASSWORD@host or ?password=."""
    url = mask_query_password(url)
    head, sep, tail = url.partition("://")
    creds, at, host = tail.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{host}"


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the password of any storage URL in it masked (it is recorded in model files)."""
    return [redact_url(a) if "://" in a else a for a in argv]
