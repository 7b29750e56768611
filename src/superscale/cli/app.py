"""The typer application object and the consoles every verb prints through."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

app = typer.Typer(
    name="superscale",
    help="Model GPU computing from the chip to the thousand-card cluster: how long a "
    "training step takes, where the time goes, whether it fits, and what hardware buys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Print machine-readable JSON on stdout (no colour, stable key order)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False))


@app.callback()
def _root() -> None:
    """superscale: model GPU clusters, from the chip to the thousand-card cluster."""


def print_table(table: Table) -> None:
    """Print a table; when piped (not a terminal), at its natural width so no cell wraps."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(1000), table).maximum
    wide = Console(file=console.file, width=max(console.width, natural), highlight=False)
    wide.print(table)
