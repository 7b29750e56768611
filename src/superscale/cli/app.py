"""The typer application object and the consoles every verb prints through."""

from __future__ import annotations

import json
import os
from importlib import metadata
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

app = typer.Typer(
    name="superscale",
    help="Model GPU computing from the chip to the thousand-card cluster: how long a "
    "training step takes, where the time goes, whether it fits, and what hardware buys.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Print machine-readable JSON on stdout (no colour, stable key order)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False))


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("superscale")
        except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare tree
            version = "unknown (not installed)"
        typer.echo(f"superscale {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """superscale: model GPU clusters, from the chip to the thousand-card cluster."""


_METAVARS: dict[Any, str] = {int: "N", float: "NUMBER", str: "TEXT"}


def _metavar(param: Any) -> str | None:
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return None  # a choice lists its values
    if desc.is_path:
        return "PATH"
    annotation = desc.annotation
    return _METAVARS.get(annotation)


_OWN_LINE = ("or ", "superscale ", "[bold]superscale ")


def reflow(text: str) -> str:
    """Help text for the terminal: each paragraph's hard line breaks joined, so the help
    wraps at the terminal's width without orphan words; a line that is an example (it
    starts with "or " or with the command itself) keeps its own line."""
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        out = lines[0] if lines else ""
        for line in lines[1:]:
            out += ("\n" if line.startswith(_OWN_LINE) else " ") + line
        paragraphs.append(out)
    return "\n\n".join(paragraphs)


def _no_type(ctx: Any) -> None:
    """An argument's type column: empty, its metavar (SCENARIO, DB, NAME) says it."""
    return None


def polish(command: Any) -> Any:
    """Reflow every command's and option's help and give options real metavars (N, PATH,
    TEXT; none for flags, `--help` included) in place of typer's `<int>`/`<bool>`, and
    arguments no `<str>`/`<path>` type column; returns `command`."""
    stack = [command]
    while stack:
        current = stack.pop()
        if current.help:
            current.help = reflow(current.help)
        # click builds `--help` on demand and caches it: build it now to drop its <bool>
        help_option = current.get_help_option(click.Context(current))
        if help_option is not None:
            help_option.metavar = ""
        for param in current.params:
            if param.param_type_name == "option":
                if param.help:
                    param.help = reflow(param.help)
                if param.is_flag:
                    param.metavar = ""
                elif param.metavar is None:
                    param.metavar = _metavar(param)
            elif param.param_type_name == "argument":
                if param.metavar is None and param.name:
                    param.metavar = param.name.upper()
                param.display_type_rich = _no_type
        stack.extend(getattr(current, "commands", {}).values())
    return command


def figure(value: float | None) -> str:
    """A published or predicted figure in a validation table: whole numbers (thousands
    separated) from 1000 up, one decimal below, empty for none."""
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def print_table(table: Table) -> None:
    """Print a table at the terminal's width (text cells fold, figures never wrap); when
    piped with no COLUMNS set, at its natural width so no cell wraps at all."""
    if console.is_terminal or os.environ.get("COLUMNS"):
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(1000), table).maximum
    wide = Console(file=console.file, width=max(console.width, natural), highlight=False)
    wide.print(table)


# Options `simulate` and `search` share for `--from-megatron`: where the run lands.
MegatronSystem = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="With --from-megatron: a catalog system; --count, or the launcher's "
        "nproc_per_node·nnodes, gives how many.",
        show_default=False,
    ),
]
MegatronCount = Annotated[
    int | None,
    typer.Option(min=1, help="With --system: how many systems.", show_default=False),
]
