"""`superscale catalog`, `show` and `check`: browse the catalogs and validate scenarios.

Thin printing over the library: the catalogs (`superscale.hardware.catalog`,
`superscale.models.catalog`), `load_scenario` and `parallelism.resolve`. Units are read from
the field names (`hbm_gib` → GiB, `latency_us` → µs, `peak_tflops` → TFLOP/s), the way the
catalog YAML names them, so a new field with a unit suffix prints its unit with no change here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.markup import escape
from rich.table import Table

from superscale.catalog import Catalog
from superscale.cli.app import app, console, print_json, print_table
from superscale.cli.limits import plural
from superscale.errors import SpecError, unknown_name_message
from superscale.hardware.profile import efficiency_source
from superscale.hardware.spec import Chip, Cluster, Link, System
from superscale.models.spec import ModelSpec
from superscale.parallelism import Plan, resolve
from superscale.parallelism.plan import recipe_words
from superscale.report.catalog import CATALOGS, derived_figures
from superscale.report.check import check_json, network_words
from superscale.scenario import Scenario, load_scenario

# Field-name suffix → unit, checked in order (so `_kw` wins over `_w`).
_UNITS: tuple[tuple[str, str], ...] = (
    ("_tb_per_s", "TB/s"),
    ("_gb_per_s", "GB/s"),
    ("_gbit_per_s", "Gb/s"),
    ("_gib", "GiB"),
    ("_us", "µs"),
    ("_kw", "kW"),
    ("_w", "W"),
    ("tflops", "TFLOP/s"),
    ("_params_b", "billion"),
    ("rack_units", "U"),
    ("patch", "px"),
    ("image_size", "px"),
)
_GROUP_NAMES = {
    "tp": "tensor",
    "cp": "context",
    "ep": "expert",
    "dp": "data",
    "edp": "expert data",
    "pp": "pipeline",
}
_SOURCE_FIELDS = ("source", "estimate", "estimate_reason", "estimated_fields")
_NA = "—"


def unit_of(field: str) -> str:
    """The unit a field name carries in its suffix ("hbm_gib" → "GiB"), or ""."""
    for suffix, unit in _UNITS:
        if field.endswith(suffix):
            return unit
    return ""


def _fmt(value: Any) -> str:
    if value is None:
        return _NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict) and not value:
        return _NA
    if isinstance(value, tuple | list):
        return ", ".join(_fmt(v) for v in value) or _NA
    return str(value)


def _billions(count: int) -> str:
    return f"{count / 1e9:,.1f}"


def _lookup(name: str) -> list[tuple[str, Any]]:
    """Every (kind, entry) named `name`, in catalog order; SpecError with a hint if none."""
    found = []
    everything: list[str] = []
    for kind, load in CATALOGS.values():
        entries = load()
        everything.extend(entries.names())
        if name in entries:
            found.append((kind, entries.get(name)))
    if not found:
        raise SpecError(unknown_name_message("name", name, everything))
    return found


def _field_rows(spec: BaseModel, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted key, unit, value) for every field; nested catalog entries print as their name."""
    for field in type(spec).model_fields:
        if not prefix and field in _SOURCE_FIELDS:
            continue
        value = getattr(spec, field)
        key = f"{prefix}{field}"
        if isinstance(value, Chip | Link | System):
            yield key, "", value.name
        elif isinstance(value, BaseModel):
            yield from _field_rows(value, f"{key}.")
        elif isinstance(value, dict) and value:
            for sub, item in value.items():
                yield f"{key}.{sub}", unit_of(field), item
        else:
            yield key, unit_of(field), value


def _show_one(kind: str, entry: Any) -> None:
    title = getattr(entry, "display_name", None) or entry.name
    console.print(f"[bold]{escape(title)}[/]  ({kind} [cyan]{escape(entry.name)}[/])")
    estimated = set(getattr(entry, "estimated_fields", ()) or ())
    all_estimated = bool(getattr(entry, "estimate", False)) and not estimated
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value")
    table.add_column("unit")
    table.add_column("est", justify="center")
    for key, unit, value in _field_rows(entry):
        mark = "*" if (key in estimated or key.split(".")[0] in estimated) else ""
        table.add_row(escape(key), escape(_fmt(value)), unit, f"[yellow]{mark}[/]")
    print_table(table)
    derived = derived_figures(entry)
    if isinstance(entry, ModelSpec):
        line = f"params {_billions(entry.params)} B"
        if entry.moe is not None:
            line += f", active {_billions(entry.active_params)} B per token"
        if entry.published_params_b:
            line += f" (published {entry.published_params_b:g} B)"
        console.print(f"[bold]derived[/]  {line}")
    elif "gpus" in derived:
        console.print(f"[bold]derived[/]  {plural(derived['gpus'], 'GPU')}")
    console.print(f"[bold]source[/]   {escape(str(getattr(entry, 'source', None) or _NA))}")
    if isinstance(entry, Chip):
        console.print(f"[bold]efficiency[/] {escape(efficiency_source(entry))}")
    if getattr(entry, "estimate", False):
        which = "all figures" if all_estimated else "fields marked *"
        reason = getattr(entry, "estimate_reason", None) or ""
        console.print(f"[yellow]estimate[/] ({which}) {escape(reason)}")


def _table(title: str, headers: tuple[str, ...], *, text: frozenset[str]) -> Table:
    """A compact table: the first (key) column never wraps; other cells fold, losing nothing."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for index, header in enumerate(headers):
        is_name = index == 0
        table.add_column(
            header,
            no_wrap=is_name,
            overflow="ellipsis" if is_name else "fold",
            justify="left" if header in text or is_name else "right",
        )
    return table


def _est(entry: Any) -> str:
    return "*" if getattr(entry, "estimate", False) else ""


def _chips_table(entries: Catalog[Chip]) -> Table:
    headers = (
        "name",
        "vendor",
        "bf16\nTFLOP/s",
        "fp8\nTFLOP/s",
        "HBM\nGiB",
        "HBM\nTB/s",
        "scale-up\nGB/s",
        "TDP\nW",
        "est",
    )
    table = _table(
        "chips (dense peaks, no sparsity; * = contains estimates)",
        headers,
        text=frozenset({"vendor", "est"}),
    )
    for c in entries:
        table.add_row(
            c.name,
            c.vendor,
            _fmt(c.peak_tflops.get("bf16")),
            _fmt(c.peak_tflops.get("fp8")),
            _fmt(c.hbm_gib),
            _fmt(c.hbm_bandwidth_tb_per_s),
            _fmt(c.scale_up.bandwidth_gb_per_s if c.scale_up else None),
            _fmt(c.tdp_w),
            _est(c),
        )
    return table


def _links_table(entries: Catalog[Link]) -> Table:
    headers = ("name", "kind", "bandwidth", "latency\nµs", "in-network\nreduction", "est")
    table = _table(
        "links (per port, per direction; * = contains estimates)",
        headers,
        text=frozenset({"kind", "bandwidth", "in-network\nreduction", "est"}),
    )
    for link in entries:
        if link.bandwidth_gb_per_s is not None:
            bandwidth = f"{_fmt(link.bandwidth_gb_per_s)} GB/s"
        else:
            bandwidth = f"{_fmt(link.bandwidth_gbit_per_s)} Gb/s"
        table.add_row(
            link.name,
            link.kind,
            bandwidth,
            _fmt(link.latency_us),
            _fmt(link.in_network_reduction),
            _est(link),
        )
    return table


def _systems_table(entries: Catalog[System]) -> Table:
    headers = (
        "name",
        "kind",
        "chip",
        "GPUs",
        "scale-up\ndomain",
        "NICs",
        "cooling",
        "power\nkW",
        "est",
    )
    table = _table(
        "systems (scale-up domain: GPUs × fabric; * = contains estimates)",
        headers,
        text=frozenset({"kind", "chip", "scale-up\ndomain", "NICs", "cooling", "est"}),
    )
    for s in entries:
        table.add_row(
            s.name,
            s.kind,
            s.chip.name,
            _fmt(s.gpus),
            f"{s.scale_up.gpus} × {s.scale_up.link.name}",
            f"{s.nics.count} × {s.nics.link.name}",
            s.cooling,
            _fmt(s.power_kw),
            _est(s),
        )
    return table


def _clusters_table(entries: Catalog[Cluster]) -> Table:
    headers = ("name", "system", "count", "GPUs", "network", "topology")
    table = _table(
        "clusters (systems joined by a scale-out network)",
        headers,
        text=frozenset({"system", "network", "topology"}),
    )
    for cl in entries:
        over = cl.scale_out.oversubscription
        topology = cl.scale_out.topology + (f" {over:g}:1" if over != 1 else "")
        table.add_row(
            cl.name or _NA, cl.system.name, _fmt(cl.count), _fmt(cl.gpus), cl.nic.name, topology
        )
    return table


def _models_table(entries: Catalog[ModelSpec]) -> Table:
    headers = ("name", "layers", "hidden", "heads/kv", "experts/top-k", "params\nB", "active\nB")
    table = _table("models (params derived from the shapes)", headers, text=frozenset())
    for m in entries:
        experts = f"{m.moe.experts}/{m.moe.top_k}" if m.moe else _NA
        table.add_row(
            m.name,
            _fmt(m.layers),
            _fmt(m.hidden),
            f"{m.heads}/{m.n_kv_heads}",
            experts,
            _billions(m.params),
            _billions(m.active_params),
        )
    return table


_TABLES: dict[str, Callable[[Any], Table]] = {
    "chips": _chips_table,
    "links": _links_table,
    "systems": _systems_table,
    "clusters": _clusters_table,
    "models": _models_table,
}

_JSON_HELP = "Print JSON instead of a table (machine-readable; e.g. pipe into jq)."


@app.command("catalog")
def catalog_command(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="Which catalog: chips, links, systems, clusters or models. "
            "Omit for a count of each.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """List the hardware and model catalogs with their key figures and units.

    Units are in the column headers; [yellow]*[/] marks entries with estimated figures.

    [bold]superscale catalog[/]                 how many entries each catalog holds
    [bold]superscale catalog chips[/]           peak TFLOP/s, HBM, scale-up bandwidth, TDP
    [bold]superscale catalog models --json[/]   every field of every model, as JSON
    """
    if kind is None:
        counts = {plural: load().names() for plural, (_, load) in CATALOGS.items()}
        if as_json:
            print_json(counts)
            return
        table = _table(
            "catalogs", ("catalog", "entries", "for example"), text=frozenset({"for example"})
        )
        for plural, names in counts.items():
            sample = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            table.add_row(plural, str(len(names)), sample)
        print_table(table)
        console.print("list one catalog:         [bold]superscale catalog chips[/]")
        console.print("every field of one entry: [bold]superscale show h100-sxm[/]")
        return
    if kind not in CATALOGS:
        raise SpecError(unknown_name_message("catalog", kind, CATALOGS))
    entries = CATALOGS[kind][1]()
    if as_json:
        print_json([entry.model_dump(mode="json") for entry in entries])
        return
    print_table(_TABLES[kind](entries))


@app.command("show")
def show_command(
    name: Annotated[
        str,
        typer.Argument(
            help="A catalog name: chip, link, system, cluster or model (e.g. h100-sxm, "
            "dgx-h100, h100-16k, llama3-70b).",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the full spec plus a 'derived' key as JSON."),
    ] = False,
) -> None:
    """Show every field of one catalog entry, with units, source and estimate marks.

    NAME is looked up in every catalog: chips, links, systems, clusters, models.
    Models also show the parameter counts derived from their shapes;
    systems and clusters show their GPU count.

    [bold]superscale show h100-sxm[/]               a chip: peaks, HBM, links, efficiency
    [bold]superscale show metax-cube-128 --json[/]  a super-node, full spec as JSON
    [bold]superscale show intern-s1-pro[/]          a model: shapes and derived params
    """
    found = _lookup(name)
    kind, entry = found[0]
    if as_json:
        print_json({**entry.model_dump(mode="json"), "derived": derived_figures(entry)})
        return
    _show_one(kind, entry)
    for other, _ in found[1:]:
        console.print(f"[dim]'{escape(name)}' is also a {other} name[/]")


def _print_check(path: str, scenario: Scenario, plan: Plan) -> None:
    m, cl, t = scenario.model, scenario.cluster, scenario.require_training()
    params = f"{_billions(m.params)} B params"
    if m.moe is not None:
        params += f", {_billions(m.active_params)} B active"
    cluster_name = f"{cl.name}: " if cl.name else ""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("model", f"{escape(m.display_name or m.name)} ({escape(m.name)}), {params}")
    grid.add_row(
        "cluster",
        f"{escape(cluster_name)}{cl.system.name} × {cl.count:,} = {plural(cl.gpus, 'GPU')} "
        f"({cl.chip.name}); scale-out {cl.nic.name}, {network_words(cl)}",
    )
    grid.add_row("efficiency", escape(efficiency_source(cl.chip)))
    grid.add_row(
        "training",
        f"seq {t.seq_len:,} tokens, global batch {t.global_batch:,} sequences, {t.precision}",
    )
    grid.add_row(
        "plan",
        f"tp {plan.tp} · pp {plan.pp} · cp {plan.cp} · dp {plan.dp} (derived) = "
        f"{plural(plan.gpus, 'GPU')}; ep {plan.ep}",
    )
    grid.add_row(
        "",
        f"micro-batch {plan.micro_batch}, {plan.micro_batches} micro-batches per step, "
        f"schedule {plan.schedule}"
        + (f" ({plan.virtual_stages} virtual stages)" if plan.virtual_stages > 1 else "")
        + f", zero {plan.zero}, recompute {plan.recompute}, sequence parallel "
        + ("on" if plan.sequence_parallel else "off"),
    )
    words = recipe_words(scenario, plan)
    if words:
        grid.add_row("recipe", escape("; ".join(words)))
    console.print(f"[bold]scenario[/] {escape(path)}")
    console.print(grid)
    table = _table(
        "parallel groups", ("group", "size", "where it lands"), text=frozenset({"where it lands"})
    )
    for kind, g in plan.groups.items():
        if kind in {"ep", "edp"} and m.moe is None:
            where = "[dim]no experts (dense model)[/]"
        elif g.size == 1:
            where = "[dim]size 1: no traffic[/]"
        else:
            where = escape(g.describe(cl))
        label = f"{kind} ({_GROUP_NAMES[kind]})" if kind in _GROUP_NAMES else kind
        table.add_row(label, str(g.size), where)
    print_table(table)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print(
        "[green]valid[/]" + (f" with {len(plan.warnings)} warning(s)" if plan.warnings else "")
    )


@app.command("check")
def check_command(
    scenario_path: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO.yaml",
            help="Scenario file: model, cluster, training, parallel "
            "(e.g. examples/llama3-70b-64xh100.yaml).",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the resolved plan as JSON (gpus, dp, groups, warnings)."
        ),
    ] = False,
) -> None:
    """Validate a scenario and show how its parallel plan lands on the hardware.

    Prints the derived dp, the micro-batches per step, and where each group lands:
    inside a server, inside a super-node, or across the scale-out network.

    A serving scenario (no training section) shows its precisions, stored weights,
    workload and pools with their memory instead.

    Warnings (e.g. tp larger than the scale-up domain) do not fail the check.
    A mistake in the file exits with code 2 and one line naming the field.

    [bold]superscale check examples/llama3-70b-64xh100.yaml[/]
    [bold]superscale check examples/moe-metax-cube-128.yaml --json[/]
    """
    scenario = load_scenario(scenario_path)
    if scenario.training is None:  # a serving scenario: its deployment, not a training plan
        from superscale.cli.serving import check_serving

        check_serving(scenario_path, scenario, as_json=as_json)
        return
    plan = resolve(scenario)
    if as_json:
        print_json(check_json(scenario, plan))
        return
    _print_check(scenario_path, scenario, plan)
