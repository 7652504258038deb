"""Typer commands, one module per command group. Thin: parse, call, print."""
