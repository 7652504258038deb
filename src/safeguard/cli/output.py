"""How every command reports: human text through Rich, or ``--output json`` for scripts.

Errors always go to stderr with their stable code and hint, and the exit code follows
``safeguard.core.errors`` (0 ok, 1 verification failed, 2 usage or input, 3 unreachable).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from safeguard.core.errors import EXIT_USAGE, SafeguardError

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.text, "--output", "-o", help="text or json")
INSECURE_OPTION = typer.Option(
    False,
    "--allow-insecure-registry",
    help="Allow plain HTTP (and unverified TLS) to registries that are not on loopback.",
)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def fail(error: SafeguardError, output: OutputFormat = OutputFormat.text) -> NoReturn:
    if output is OutputFormat.json:
        sys.stderr.write(json.dumps({"error": error.to_dict()}) + "\n")
    else:
        err_console.print(f"[bold red]error[/] [{error.code}] {error.message}", highlight=False)
        if error.hint:
            err_console.print(f"[yellow]hint:[/] {error.hint}", highlight=False)
    raise typer.Exit(error.exit_code)


@contextmanager
def reported(output: OutputFormat = OutputFormat.text) -> Iterator[None]:
    """Turn any ``SafeguardError`` raised inside into a clean message and its exit code."""
    try:
        yield
    except SafeguardError as exc:
        fail(exc, output)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def run_reported(fn: Callable[[], T], output: OutputFormat = OutputFormat.text) -> T:
    with reported(output):
        return fn()
    raise typer.Exit(EXIT_USAGE)  # pragma: no cover - unreachable, keeps mypy satisfied
