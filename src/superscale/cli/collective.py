"""`superscale collective`: an nccl-tests-style sweep of predicted collective performance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from superscale.cli import plot
from superscale.cli.app import app, console, print_json, print_table
from superscale.cli.limits import (
    MAX_COLLECTIVE_BYTES,
    MAX_COLLECTIVE_GPUS,
    MAX_COLLECTIVE_ROWS,
    check_work,
)
from superscale.collectives import COLLECTIVES, CommModel
from superscale.collectives.sweep import DTYPES, sweep
from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.spec import MAX_COUNT
from superscale.units import parse_bytes


@app.command()
def collective(
    system: Annotated[
        str | None, typer.Option(help="Catalog system (server or super-node).")
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="How many systems.")] = 1,
    cluster: Annotated[
        str | None, typer.Option(help="Catalog cluster instead of --system/--count.")
    ] = None,
    op: Annotated[
        str,
        typer.Option(
            help="all_reduce | all_gather | reduce_scatter | all_to_all | broadcast | send_recv"
        ),
    ] = "all_reduce",
    gpus: Annotated[int | None, typer.Option(help="Group size; default every GPU.")] = None,
    min_bytes: Annotated[str, typer.Option(help="Smallest size (8, 1K, 64M, ...).")] = "8",
    max_bytes: Annotated[str, typer.Option(help="Largest size.")] = "8G",
    step_factor: Annotated[
        int, typer.Option("--step-factor", "-f", min=2, help="Multiply the size by this each row.")
    ] = 2,
    algo: Annotated[
        str,
        typer.Option(
            help="auto (every algorithm, the one that prices each size marked) or one of "
            "ring, tree, hierarchical, nvls, mesh, direct, "
            "hierarchical_a2a, load_store, p2p; 'measured' where the chip's profile "
            "measured this collective on this many GPUs of one system."
        ),
    ] = "auto",
    dtype: Annotated[str, typer.Option(help="Element type for the count column.")] = "float",
    json_out: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write busbw against size to this PNG.")] = None,
    max_gpus: Annotated[
        int,
        typer.Option(
            min=2, help="Refuse clusters of more GPUs than this (routing memory grows with it)."
        ),
    ] = MAX_COLLECTIVE_GPUS,
) -> None:
    """Predict an nccl-tests sweep: time, algbw and busbw per size and algorithm.

    Example: [bold]superscale collective --system dgx-h100 --op all_reduce --min-bytes 1M[/]
    or [bold]superscale collective --system metax-cube-128 --op all_to_all --json[/]

    busbw uses nccl-tests' factors (all-reduce 2(n−1)/n, all-gather and reduce-scatter
    (n−1)/n, ...), so figures compare directly with `all_reduce_perf -b 8 -e 8G -f 2`.
    Where the chip's profile measured the collective on that many GPUs of one system (the
    shipped fitted profiles carry the nccl-tests rows of whole A100, H100, H200, B200 and
    MI300X nodes), a 'measured' column shows those figures: a training or serving step
    prices that group with them.
    """
    if count > MAX_COUNT:
        raise SpecError(f"--count must be in 1..{MAX_COUNT:,}, got {count:,}")
    target = _cluster(system, count, cluster)
    check_work("collective", target.gpus, unit="GPUs", cap=max_gpus, flag="--max-gpus")
    if op not in COLLECTIVES:
        raise SpecError(f"--op: unknown collective '{op}' (allowed: {', '.join(COLLECTIVES)})")
    if dtype not in DTYPES:
        raise SpecError(f"--dtype: unknown type '{dtype}' (allowed: {', '.join(DTYPES)})")
    group = target.gpus if gpus is None else gpus
    if group < 2 or target.gpus % group:
        raise SpecError(
            f"--gpus: {group} must be at least 2 and divide the cluster's {target.gpus} GPUs"
        )
    lo, hi = _size("--min-bytes", min_bytes), _size("--max-bytes", max_bytes)
    if lo > hi:
        raise SpecError(f"--min-bytes ({min_bytes}) exceeds --max-bytes ({max_bytes})")
    rows = math.floor(math.log(hi / max(lo, 1)) / math.log(step_factor)) + 1
    if rows > MAX_COLLECTIVE_ROWS:
        raise SpecError(
            f"--min-bytes {min_bytes} to --max-bytes {max_bytes} by {step_factor} is {rows} "
            f"sizes; at most {MAX_COLLECTIVE_ROWS} (raise --step-factor)"
        )
    result = sweep(
        CommModel(target),
        op,
        gpus=group,
        min_bytes=lo,
        max_bytes=hi,
        factor=step_factor,
        algorithm=algo,
        elem_bytes=DTYPES[dtype],
    )
    result["cluster"] = target.name or f"{target.count}x {target.system.name}"
    result["dtype"] = dtype
    if plot is not None:
        _plot(result, plot)
    if json_out:
        print_json(result)
        return
    _print(result)
    if plot is not None:
        console.print(f"wrote {plot}")


def _cluster(system: str | None, count: int, cluster: str | None) -> Cluster:
    from superscale.hardware.catalog import clusters, systems

    if cluster is not None:
        if system is not None:
            raise SpecError("give --cluster or --system, not both")
        return clusters().get(cluster)
    if system is None:
        raise SpecError("--system (a catalog server or super-node) or --cluster is required")
    return Cluster(system=systems().get(system), count=count)


def _size(option: str, text: str) -> int:
    try:
        value = parse_bytes(text)
    except (ValueError, OverflowError):
        raise SpecError(f"{option}: '{text}' is not a size (examples: 8, 64K, 1M, 8G)") from None
    if not 1 <= value <= MAX_COLLECTIVE_BYTES:
        raise SpecError(
            f"{option}: must be 1 byte to {MAX_COLLECTIVE_BYTES // 2**40} TiB, got '{text}'"
        )
    return value


def _print(result: dict[str, Any]) -> None:
    names = result["algorithms"]
    single = len(names) == 1
    table = Table(
        title=f"{result['op']} on {result['gpus']} GPUs of {result['cluster']} (predicted)"
    )
    for col in ("size (B)", "count", "type"):
        table.add_column(col, justify="right")
    for name in names:
        table.add_column(f"{name}\ntime (us)", justify="right")
        if single:
            table.add_column("algbw\n(GB/s)", justify="right")
        table.add_column(f"{name}\nbusbw (GB/s)", justify="right")
    for row in result["rows"]:
        cells = [str(row["size_bytes"]), str(row["count"]), result["dtype"]]
        for name in names:
            a = row["algos"][name]
            mark = "" if single or name != row["best"] else "*"
            cells.append(f"{a['time_us']:.1f}{mark}")
            if single:
                cells.append(f"{a['algbw_gb_per_s']:.2f}")
            cells.append(f"{a['busbw_gb_per_s']:.2f}")
        table.add_row(*cells)
    print_table(table)
    if not single:
        console.print(
            "* what prices that size in a step: the measured curve where the chip's profile "
            "has one for this group, else the fastest algorithm (what --algo auto picks)"
        )


def _plot(result: dict[str, Any], path: Path) -> None:
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    sizes = [r["size_bytes"] for r in result["rows"]]
    for name in result["algorithms"]:
        ax.plot(
            sizes,
            [r["algos"][name]["busbw_gb_per_s"] for r in result["rows"]],
            marker="o",
            ms=3,
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"{result['op']} on {result['gpus']} GPUs of {result['cluster']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    plot.save(fig, path, dpi=120)
