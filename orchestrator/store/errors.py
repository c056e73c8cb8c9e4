"""Errors of the store, a small branch of :class:`~specialists.errors.UnderstudyError`::

    UnderstudyError
    ├── ConfigurationError    the database URL is not one the store can use
    ├── RunNotFound           no run with that id
    ├── RunAlreadyRecorded    a run with that id is already stored (nothing was written)
    ├── KeyNotFound           no API key (or more than one) matches an id or prefix
    ├── BatchNotFound         no batch job with that id
    ├── FileNotFound          no stored file with that id
    └── StoreError            the database failed; wraps the SQLAlchemy or driver error

Every message built from a database URL shows it with the password masked.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class RunNotFound(UnderstudyError):
    """No run with this id is stored.

    Args:
        run_id: The id that was looked up.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the transcript store")


class RunAlreadyRecorded(UnderstudyError):
    """A run with this id is already stored; the store wrote nothing.

    Batch jobs re-run after a crash rely on this to never store an answer twice.

    Args:
        run_id: The id that is already taken.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} is already recorded; runs are never overwritten")


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
        super().__init__(f"transcript store {operation} failed on {self.url}: {self.reason}")


class KeyNotFound(UnderstudyError):
    """No key, or more than one, matches an id or prefix.

    Args:
        query: The id or prefix that was looked up.
        matches: The prefixes of the keys it matched, when it matched several.
        min_prefix: The shortest prefix a lookup accepts (said in the message).
    """

    def __init__(self, query: str, *, matches: Sequence[str] = (), min_prefix: int = 6) -> None:
        self.query = query
        self.matches = list(matches)
        if self.matches:
            message = (
                f"{query!r} matches {len(self.matches)} keys ({', '.join(self.matches)}); "
                "give more of the prefix, or the key id"
            )
        elif len(query) < min_prefix:
            message = (
                f"no key with id {query!r}; a prefix must have at least {min_prefix} "
                "characters (see `understudy keys list`)"
            )
        else:
            message = f"no key with id or prefix {query!r} (see `understudy keys list --all`)"
        super().__init__(message)


class BatchNotFound(UnderstudyError):
    """No batch job with this id is stored.

    Args:
        batch_id: The id that was looked up.
    """

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(f"no batch job with id {batch_id!r} (see `understudy batch list`)")


class FileNotFound(UnderstudyError):
    """No stored file with this id.

    Args:
        file_id: The id that was looked up.
    """

    def __init__(self, file_id: str) -> None:
        self.file_id = file_id
        super().__init__(f"no file with id {file_id!r}")
