"""The database's own error, and the URL hygiene every message about a database needs.

:class:`StoreError` (a :class:`~specialists.errors.UnderstudyError`) is what every store raises
when the database itself fails; what a store did not find (a run, a key, a batch) is that
store's own error, next to it. Every message built from a database URL shows it with the
password masked.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from specialists.errors import UnderstudyError


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not parseable: fall back to cutting out anything between "user:" and "@".
        scheme, sep, rest = url.partition("://")
        credentials, at, host = rest.rpartition("@")
        if not sep or not at or ":" not in credentials:
            return url
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def scrub_password(text: str, url: str) -> str:
    """Remove the URL's password from ``text``; driver messages sometimes echo the DSN."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return text
    if password:
        text = text.replace(str(password), "***")
    return text


class StoreError(UnderstudyError):
    """The database refused or failed an operation.

    Args:
        operation: What the store was doing (``save_run``, ``migrate``, …).
        url: The database URL; kept and shown with its password masked.
        reason: The underlying error, already free of the password.
    """

    def __init__(self, operation: str, *, url: str, reason: str) -> None:
        self.operation = operation
        self.url = mask_url(url)
        self.reason = scrub_password(reason, url)
        super().__init__(f"database {operation} failed on {self.url}: {self.reason}")
