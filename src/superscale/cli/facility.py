"""`superscale compare`: one workload on several clusters, side by side; and the facility,
reliability and cost block that `simulate` prints.

Thin printing over `superscale.compare.compare` and the result JSON. `--plot`
writes a PNG bar chart with matplotlib (optional: the `plot` extra), imported only then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from superscale.cli import plot
from superscale.cli.app import app, console, print_json
from superscale.cli.limits import in_range, plural
from superscale.compare import compare as compare_clusters
from superscale.compare import entry_json, parse_clusters
from superscale.errors import SpecError
from superscale.scenario import load_scenario
from superscale.spec import MAX_TOKENS

_NA = "—"


def _money(usd: float | None) -> str:
    if usd is None:
        return _NA
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(usd) >= scale:
            return f"${usd / scale:,.1f}{suffix}"
    return f"${usd:,.0f}" if abs(usd) >= 100 else f"${usd:,.2f}"


def _num(value: float | None, fmt: str = ",.1f", suffix: str = "") -> str:
    return _NA if value is None else f"{value:{fmt}}{suffix}"


def facility_lines(data: dict[str, Any]) -> list[str]:
    """Human lines for a result JSON's facility, reliability and cost sections (rich markup)."""
    fac, rel, cost = data.get("facility"), data.get("reliability"), data.get("cost")
    if fac is None or rel is None or cost is None:
        return []
    power, space, energy = fac["power"], fac["space"], fac["energy"]
    limit = (
        f"[bold red]over the {space['cabinet_limit_kw']:.0f} kW limit[/]"
        if space["over_limit"]
        else f"limit {space['cabinet_limit_kw']:.0f} kW"
    )
    lines = [
        f"  {'space':<12} {plural(fac['gpus'], 'GPU')} in {plural(space['cabinets'], 'cabinet')} "
        f"({space['compute_cabinets']} compute + {space['network_cabinets']} network), "
        f"{space['floor_m2']:,.1f} m²",
        f"  {'cooling':<12} {fac['cooling']}, PUE {fac['pue']:.2f}; "
        f"{space['gpus_per_cabinet']:g} GPUs per cabinet",
        f"  {'cabinet':<12} {power['cabinet_kw']:,.1f} kW running, {space['cabinet_max_kw']:,.1f}"
        f" kW max ({limit})",
        f"  {'power':<12} GPU {power['gpu_w']:,.0f} W at {100 * fac['utilization']:.0f}% busy "
        f"(TDP {power['gpu_tdp_w']:,.0f} W); {power['it_kw']:,.0f} kW IT, "
        f"{power['facility_kw']:,.0f} kW at the meter",
        f"  {'energy':<12} {energy['kwh_per_step']:,.3g} kWh per step, "
        f"{_num(energy['kwh_per_million_tokens'], ',.3g')} kWh per million tokens",
        f"  {'failures':<12} {rel['interruptions_per_day']:.2f} interruptions/day "
        f"(MTBF {_num(rel['mtbf_h'], ',.1f')} h)",
    ]
    if "goodput" in rel:
        interval = rel["checkpoint_interval_s"]
        lines.append(
            f"  {'checkpoints':<12} {rel['checkpoint_gib']:,.0f} GiB in "
            f"{rel['checkpoint_write_s']:,.0f} s every {_num(interval and interval / 60, ',.0f')}"
            f" min; restart {rel['restart_s']:,.0f} s; goodput {100 * rel['goodput']:.1f}%"
        )
    if rel["wall_clock_days"] is not None:
        lines.append(
            f"  {'time':<12} {rel['wall_clock_days']:,.1f} days to train "
            f"{rel['run_tokens']:.3g} tokens ({rel['useful_days']:,.1f} without failures)"
        )
    elif rel["run_tokens"] is None:
        lines.append(f"  {'time':<12} set training.tokens for the time and cost to train")
    estimate = " (est.)" if cost["price_estimate"] else ""
    lines += [
        f"  {'capital':<12} {_money(cost['capital_usd'])}{estimate}, "
        f"{cost['lifetime_years']:g} years: {_money(cost['usd_per_hour'])}/h incl. energy "
        f"{_money(cost['energy_usd_per_hour'])}/h",
        f"  {'cost':<12} {_money(cost['usd_per_million_tokens'])} per million tokens"
        + (f", {_money(cost['run_usd'])} to train" if cost["run_usd"] is not None else ""),
    ]
    return lines


# (label, getter over a result JSON) for the side-by-side table and the plot.
Getter = Callable[[dict[str, Any]], Any]
_ROWS: tuple[tuple[str, Getter, str], ...] = (
    ("GPUs", lambda d: d["gpus"], ",d"),
    ("step time (s)", lambda d: d["step_time_s"], ",.3f"),
    ("tokens/s", lambda d: d["tokens_per_s"], ",.0f"),
    ("MFU", lambda d: 100 * d["mfu"], ".1f%"),
    ("fits in memory", lambda d: "yes" if d["fits"] else "NO", ""),
    ("power at the meter (kW)", lambda d: d["facility"]["power"]["facility_kw"], ",.0f"),
    ("IT power (kW)", lambda d: d["facility"]["power"]["it_kw"], ",.0f"),
    ("cabinets", lambda d: d["facility"]["space"]["cabinets"], ",d"),
    ("GPUs per cabinet", lambda d: d["facility"]["space"]["gpus_per_cabinet"], ",.0f"),
    ("cabinet max (kW)", lambda d: d["facility"]["space"]["cabinet_max_kw"], ",.1f"),
    ("floor area (m²)", lambda d: d["facility"]["space"]["floor_m2"], ",.1f"),
    ("interruptions/day", lambda d: d["reliability"]["interruptions_per_day"], ".2f"),
    ("goodput", lambda d: 100 * d["reliability"]["goodput"], ".1f%"),
    ("days to train", lambda d: d["reliability"]["wall_clock_days"], ",.1f"),
    ("capital", lambda d: d["cost"]["capital_usd"], "$"),
    ("cost to train", lambda d: d["cost"]["run_usd"], "$"),
    ("$ per million tokens", lambda d: d["cost"]["usd_per_million_tokens"], ".3f"),
)
# Figures drawn by --plot: (title, row label).
_PLOTTED = (
    "tokens/s",
    "MFU",
    "power at the meter (kW)",
    "floor area (m²)",
    "interruptions/day",
    "days to train",
    "cost to train",
)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return _NA
    if fmt == "$":
        return _money(value)
    if fmt.endswith("%"):
        return f"{value:{fmt[:-1]}}%"
    return f"{value:{fmt}}" if fmt else str(value)


def _print_table(columns: list[dict[str, Any]]) -> None:
    table = Table(
        title="one workload, several clusters",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("", no_wrap=True)
    for col in columns:
        table.add_column(escape(col["cluster"]), justify="right", min_width=10, max_width=36)
    for label, get, fmt in _ROWS:
        cells = [_NA if c["result"] is None else _cell(get(c["result"]), fmt) for c in columns]
        table.add_row(label, *cells)
    table.add_row(
        "floor vs first",
        *[_NA if c["result"] is None else _cell(c.get("floor_ratio"), ".2f") for c in columns],
    )
    if any(c["error"] for c in columns):
        table.add_row(
            "error", *[f"[red]{escape(c['error'])}[/]" if c["error"] else "" for c in columns]
        )
    if console.is_terminal:
        console.print(table)
    else:  # piped: print at the table's natural width so no cell wraps (as `catalog` does)
        natural = Measurement.get(console, console.options.update_width(1000), table).maximum
        Console(file=console.file, width=max(console.width, natural), highlight=False).print(table)
    for col in columns:
        for warning in (col["result"] or {}).get("warnings", []):
            console.print(f"[yellow]warning[/] ({escape(col['cluster'])}): {escape(warning)}")


def _plot(columns: list[dict[str, Any]], path: Path) -> None:
    plt = plot.pyplot()

    rows = {label: (get, fmt) for label, get, fmt in _ROWS}
    ok = [c for c in columns if c["result"] is not None]
    names = [c["cluster"] for c in ok]
    fig, axes = plt.subplots(1, len(_PLOTTED), figsize=(3.2 * len(_PLOTTED), 3.8))
    for ax, label in zip(axes, _PLOTTED, strict=True):
        get, _ = rows[label]
        values = [get(c["result"]) for c in ok]
        heights = [v if isinstance(v, int | float) and math.isfinite(v) else 0.0 for v in values]
        ax.bar(range(len(names)), heights, color=[f"C{i}" for i in range(len(names))])
        ax.set_title(label, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    plot.save(fig, path, dpi=110)


@app.command()
def compare(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario YAML whose workload and plan are kept.")
    ],
    clusters: Annotated[
        str,
        typer.Option(
            "--clusters",
            help="Comma-separated catalog clusters or SYSTEM:COUNT, e.g. "
            "metax-cube-1k,metax-c550-8x:128,metax-c500-1k.",
            show_default=False,
        ),
    ],
    tokens: Annotated[
        float | None, typer.Option(help="Tokens to train (overrides training.tokens).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the columns as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG bar chart here (needs matplotlib).")
    ] = None,
) -> None:
    """Run one training workload on several clusters and print them side by side.

    Example: [bold]superscale compare examples/llama3-70b-metax-1k-compare.yaml
    --clusters metax-cube-1k,metax-c550-8x:128,metax-c500-1k --plot cmp.png[/]

    The scenario's cluster is replaced by each one in turn (its plan kept) and simulated
    exactly as `simulate` would: step time, tokens/s, MFU, power, cabinets, floor area,
    interruptions per day, goodput, and the time and cost to train training.tokens (or
    --tokens). A cluster the plan does not divide shows its error in its column; the exit
    code is 1 when no cluster could run the plan.
    """
    if tokens is not None:
        in_range("--tokens", tokens, low=0, high=MAX_TOKENS, low_open=True)
    names = parse_clusters(clusters)
    loaded = load_scenario(scenario)
    entries = compare_clusters(loaded, names, name=scenario.stem, tokens=tokens)
    first = next((e.result for e in entries if e.result is not None), None)
    first_floor = (
        None if first is None or first.facility is None else first.facility["space"]["floor_m2"]
    )
    columns = [entry_json(e, first_floor) for e in entries]
    if plot is not None:
        if first is None:
            raise SpecError("--plot: no cluster could run the plan; nothing to draw")
        _plot(columns, plot)
    if json_out:
        print_json({"scenario": scenario.stem, "clusters": columns})
    else:
        _print_table(columns)
        if plot is not None:
            console.print(f"bar chart written to {escape(str(plot))}")
    if first is None:  # every column failed: the comparison answered nothing
        raise typer.Exit(1)
