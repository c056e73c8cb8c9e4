"""Shared console objects: results to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: Any, *, compact: bool = False) -> None:
    """One JSON document on stdout, nothing else (safe to pipe); ``compact``: on one line."""
    print(json.dumps(data, ensure_ascii=False, indent=None if compact else 2, default=str))


def log_to_stderr(message: str) -> None:
    err_console.print(f"[dim]·[/] {message}", highlight=False)
