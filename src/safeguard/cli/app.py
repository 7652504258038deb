"""The ``safeguard`` command: wires each command group's module into one Typer app."""

from __future__ import annotations

import typer

from safeguard import __version__

app = typer.Typer(
    name="safeguard",
    help="Run an organisation's OCI artifact signing program: sign, verify, gate, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Safeguard: sign, verify, gate and audit OCI artifacts."""


@app.command()
def version() -> None:
    """Print Safeguard's version."""
    typer.echo(f"safeguard {__version__}")


def _register() -> None:
    # Each module adds its commands to ``app``; imported here so ``app`` is complete on import.
    from safeguard.cli import (  # noqa: F401
        attest,
        blob,
        copy,
        custody,
        gateway,
        inventory,
        keys,
        policy,
        push,
        quarantine,
        release,
        serve,
        sign,
        tlog,
        tree,
        verify,
    )


_register()


def main() -> None:
    app()
