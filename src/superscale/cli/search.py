"""`superscale search` and `results`: the fastest plans that fit, and a sweep's stored results.

Thin printing over `superscale.search.run.run_search` and `search.store.ResultsStore`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from superscale.cli.app import (
    MegatronCount,
    MegatronSystem,
    app,
    console,
    err_console,
    print_json,
    print_table,
)
from superscale.cli.limits import (
    MAX_SEARCH_GPUS,
    MAX_SEARCH_PLANS,
    capped_workers,
    check_work,
    plural,
)
from superscale.errors import SpecError
from superscale.scenario import read_yaml_file
from superscale.search.executors import BACKENDS, DEFAULT_BATCH_SIZE
from superscale.search.executors import Progress as ProgressFn
from superscale.search.run import SearchResult, parse_gpu_range, run_search
from superscale.search.store import ResultsStore, rebuild


class _PlansPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} plans/s" if speed else "… plans/s", style="cyan")


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[ProgressFn | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("costing plans"),
        BarColumn(),
        MofNCompleteColumn(),
        _PlansPerSecond(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=not err_console.is_terminal,
    )
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        # Started on the first report, so errors before the sweep print nothing else.
        if not task:
            bar.start()
            task.append(bar.add_task("sweep", total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()


def _megatron_hardware(
    cluster: str | None, system: str | None, count: int | None
) -> str | dict[str, Any] | None:
    """The cluster a Megatron command line runs on: --cluster, or --system [--count]."""
    if cluster and (system or count is not None):
        raise SpecError("--cluster and --system/--count are exclusive; give one")
    if count is not None and not system:
        raise SpecError("--count needs --system NAME")
    if system:
        return {"system": system} if count is None else {"system": system, "count": count}
    return cluster


def _load_base(
    scenario: Path | None,
    from_megatron: str | None,
    hardware: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    if hardware is not None and from_megatron is None:
        raise SpecError(
            "--cluster, --system and --count go with --from-megatron (a SCENARIO names its "
            "own cluster; search other hardware with --systems and --gpus)"
        )
    base: dict[str, Any] | None = None
    if scenario is not None:
        data = read_yaml_file(scenario)
        if not isinstance(data, dict):
            raise SpecError(f"{scenario}: a scenario must be a mapping (model, cluster, training)")
        base = _anchor_hf_config(data, scenario.resolve().parent)
    if from_megatron is not None:
        from superscale.parallelism.megatron import parse_megatron

        run = parse_megatron(from_megatron, cluster=hardware, base=base)
        for warning in run.warnings:
            err_console.print(f"[yellow]--from-megatron:[/] {escape(warning)}")
        if run.ignored:
            err_console.print(
                f"[yellow]--from-megatron: ignored[/] {escape(' '.join(run.ignored))}"
            )
        return dict(run.scenario)
    if base is None:
        raise SpecError("search needs a SCENARIO file or --from-megatron 'ARGS'")
    return base


def _scenario_gpus(base: dict[str, Any]) -> int | None:
    """GPUs of the scenario's own cluster, when it is a plain inline one (else None)."""
    cluster = base.get("cluster")
    if not isinstance(cluster, dict):
        return None
    count, system = cluster.get("count"), cluster.get("system")
    if not isinstance(count, int) or isinstance(count, bool) or not isinstance(system, str):
        return None
    from superscale.hardware.catalog import systems

    known = systems()
    return count * known.get(system).gpus if system in known else None


def _anchor_hf_config(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    # A relative hf_config path is relative to the scenario file, as load_scenario reads it.
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("hf_config"), str):
        path = Path(model["hf_config"])
        if not path.is_absolute():
            return {**data, "model": {**model, "hf_config": str(folder / path)}}
    return data


@app.command()
def search(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML (model, training, and the cluster unless --systems and "
            "--gpus are given); its parallel section is what the search replaces.",
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="GPU counts to try: N or A..B (e.g. 256..4096) = the powers of two from A "
            "to B that are multiples of each system's GPUs per system. Default: the "
            "scenario cluster's count.",
            show_default=False,
        ),
    ] = None,
    systems: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated catalog systems to try (e.g. dgx-h100,metax-cube-128). "
            "Default: the scenario cluster's system.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="How many of the fastest plans to show.")] = 10,
    workers: Annotated[
        int,
        typer.Option(
            help="Local worker processes, at most the CPU count (Ray: most batches in flight)."
        ),
    ] = 1,
    backend: Annotated[
        str,
        typer.Option(help="local (processes on this machine) or ray (the ray extra)."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address (default: a local Ray instance).", show_default=False
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            help="SQLite results store: finished plans are kept, and a rerun (after a crash "
            "or kill) evaluates only what is missing.",
            show_default=False,
        ),
    ] = None,
    from_megatron: Annotated[
        str | None,
        typer.Option(
            "--from-megatron",
            help="A Megatron-LM command line (quoted) giving the model, training and GPU "
            "count; SCENARIO, if given, fills what it leaves out.",
            show_default=False,
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="With --from-megatron: a catalog cluster to run on.",
            show_default=False,
        ),
    ] = None,
    system: MegatronSystem = None,
    count: MegatronCount = None,
    batch_size: Annotated[
        int, typer.Option(help="Plans per unit of work (and per store transaction).")
    ] = DEFAULT_BATCH_SIZE,
    max_plans: Annotated[
        int,
        typer.Option(min=1, help="Refuse a search of more valid plans than this (work cap)."),
    ] = MAX_SEARCH_PLANS,
    max_gpus: Annotated[
        int,
        typer.Option(
            min=1, help="Refuse clusters of more GPUs than this (routing memory grows with it)."
        ),
    ] = MAX_SEARCH_GPUS,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Find the fastest parallel plans that fit: top plans, pruned counts, Pareto front.

    Example: [bold]superscale search examples/llama3-70b-64xh100.yaml[/]
    or [bold]superscale search SCENARIO.yaml --gpus 256..4096 --systems dgx-h100,metax-cube-128
    --workers 8 --db sweep.sqlite[/]

    Every valid plan (tp, pp, cp, ep, micro-batch, schedule, ZeRO, recomputation, sequence
    parallelism) is enumerated for each cluster; invalid ones are pruned and counted by
    reason, the rest are costed with the analytical engine, and the fastest that fit are
    re-simulated with the event engine (both step times shown). The Pareto front lists the
    best throughput per GPU count where it still improves. With --json: candidates,
    pruned, evaluated, evaluated_now, reused, top, pareto, wall_s, plans_per_s.
    """
    if backend not in BACKENDS:
        raise SpecError(f"--backend: unknown backend '{backend}' (allowed: {', '.join(BACKENDS)})")
    if batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {batch_size}")
    notes: list[str] = []
    if backend == "local":
        workers, note = capped_workers(workers)
        notes += [note] if note else []
    elif workers < 1:
        raise SpecError(f"--workers must be >= 1, got {workers}")
    base = _load_base(scenario, from_megatron, _megatron_hardware(cluster, system, count))
    system_names = None if systems is None else [s for s in systems.split(",") if s.strip()]
    if systems is not None and not system_names:
        raise SpecError("--systems: no system named")
    if gpus is not None:
        top_count = parse_gpu_range(gpus)[1]
        check_work(f"search --gpus {gpus}", top_count, unit="GPUs", cap=max_gpus, flag="--max-gpus")
    own = _scenario_gpus(base)
    if gpus is None and own is not None:
        check_work("search", own, unit="GPUs in the cluster", cap=max_gpus, flag="--max-gpus")
    for note in notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    with _progress_bar(not json_out) as progress:
        result = run_search(
            base,
            gpus=gpus,
            systems=system_names,
            top=top,
            workers=workers,
            backend=backend,
            address=address,
            db=db,
            batch_size=batch_size,
            progress=progress,
            max_plans=max_plans,
        )
    if json_out:
        print_json(result.to_json())
        return
    _print_search(result)


@app.command()
def results(
    db: Annotated[
        Path,
        typer.Argument(help="SQLite results store written by search --db.", show_default=False),
    ],
    top: Annotated[int, typer.Option(help="How many of the fastest plans to show.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    rebuild_store: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Repair a damaged store: copy every readable row into a fresh file (the "
            "damaged one is kept as DB.damaged).",
        ),
    ] = False,
) -> None:
    """Show the fastest plans that fit from a sweep's results store.

    Example: [bold]superscale results sweep.sqlite --top 10[/]
    or [bold]superscale results sweep.sqlite --rebuild[/]

    The store is checked when opened (SQLite's quick_check); a damaged one is refused
    with a pointer to --rebuild rather than shown with rows missing.
    """
    if top < 1:
        raise SpecError(f"--top must be >= 1, got {top}")
    if rebuild_store:
        kept, lost = rebuild(db)
        lost_text = f"; {lost:,} unreadable part{'s' if lost != 1 else ''} dropped" if lost else ""
        err_console.print(
            f"rebuilt {escape(str(db))}: {plural(kept, 'plan')} kept{lost_text} (the damaged "
            f"file is {escape(str(db))}.damaged)"
        )
    with ResultsStore(db, create=False) as store:
        count, fitting = store.count(), store.count(fits_only=True)
        best = store.top(top)
        scenario = store.meta("scenario")
    model = None
    if scenario:
        model = json.loads(scenario).get("model")
    if json_out:
        print_json({"db": str(db), "model": model, "records": count, "fits": fitting, "top": best})
        return
    name = model if isinstance(model, str) else (model or {}).get("name", "inline model")
    console.print(
        f"[bold]{escape(str(db))}[/]: {escape(str(name))}, {count:,} plans stored, {fitting:,} fit"
    )
    if best:
        print_table(_top_table(best, title=f"top {len(best)} plans that fit", refined=False))


def _plan_text(record: dict[str, Any]) -> str:
    p = record["parallel"]
    gpus = record.get("gpus")
    dp = gpus // (p["tp"] * p["pp"] * p["cp"]) if gpus else "?"
    schedule = p["schedule"]
    if p.get("virtual_stages", 1) > 1:
        schedule += f"×{p['virtual_stages']}"
    text = (
        f"tp{p['tp']} pp{p['pp']} cp{p['cp']} ep{p['ep']} dp{dp} mb{p['micro_batch']} "
        f"{schedule} zero{p['zero']} rc:{p['recompute']}"
    )
    return text + (" sp" if p.get("sequence_parallel") else "")


def _top_table(rows: list[dict[str, Any]], *, title: str, refined: bool) -> Table:
    # Figures come from one engine per column, named in the header: the step under both,
    # throughput and MFU from the event engine once refined. Figures never wrap; the
    # plan and cluster text fold to fit the terminal.
    engine = "event" if refined else "analytical"
    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True)
    for col, right in (
        ("#", True),
        ("cluster", False),
        ("GPUs", True),
        ("plan", False),
        ("step\n(analytical)", True),
        *((("step\n(event)", True),) if refined else ()),
        (f"tokens/s\n({engine})", True),
        ("per\nGPU", True),
        (f"MFU\n({engine})", True),
        ("GiB\n/GPU", True),
    ):
        table.add_column(
            col,
            justify="right" if right else "left",
            no_wrap=right,
            overflow="fold",
            ratio=None if right else 1,
        )
    for i, r in enumerate(rows, 1):
        ties = r.get("ties") or 0
        cells = [
            str(i),
            escape(r["cluster"]),
            f"{r['gpus']:,}",
            _plan_text(r) + (f" (+{ties} equivalent)" if ties else ""),
            f"{r['step_time_s']:.4g} s",
        ]
        tokens, mfu = r["tokens_per_s"], r["mfu"]
        if refined:
            event = r["event"]
            if event["step_time_s"] is None:
                cells.append(f"[red]{escape(str(event['error']))[:40]}[/]")
            else:
                cells.append(f"{event['step_time_s']:.4g} s")
                tokens, mfu = event["tokens_per_s"], event["mfu"]
        cells += [
            f"{tokens:,.0f}",
            f"{tokens / r['gpus']:,.0f}",
            f"{100 * mfu:.1f}%",
            f"{r['peak_gib_per_gpu']:.1f}",
        ]
        table.add_row(*cells)
    return table


def _print_search(result: SearchResult) -> None:
    pruned = sum(result.pruned.values())
    reused = f", {result.reused:,} from the store" if result.reused else ""
    console.print(
        f"searched [bold]{', '.join(result.clusters)}[/]: {result.candidates:,} valid plans, "
        f"{result.evaluated_now:,} costed now{reused} in {result.sweep_s:.1f} s "
        f"({result.plans_per_s:,.0f} plans/s); {result.fits:,} fit; {pruned:,} pruned",
        soft_wrap=True,
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    if result.top:
        title = f"top {len(result.top)} plans that fit (ranked by the event engine)"
        print_table(_top_table(list(result.top), title=title, refined=True))
        console.print("[bold]where each group lands[/]")
        for i, r in enumerate(result.top, 1):
            groups = r.get("groups") or {}
            text = "; ".join(f"{k}={g['size']} {g['where']}" for k, g in groups.items())
            console.print(f"  #{i} {escape(text) or 'one GPU: no groups'}", soft_wrap=True)
    else:
        console.print("[bold red]no plan fits[/]")
    if result.pruned:
        table = Table(title="pruned plans by reason")
        table.add_column("reason")
        table.add_column("plans", justify="right")
        for reason, n in result.pruned.items():
            table.add_row(escape(reason), f"{n:,}")
        print_table(table)
    if result.pareto:
        table = Table(
            title="Pareto front: throughput against GPU count (analytical engine)",
            box=box.SIMPLE_HEAD,
        )
        for col in ("GPUs", "tokens/s\n(analytical)", "per GPU", "MFU", "cluster", "plan"):
            words = col in {"cluster", "plan"}
            table.add_column(
                col, justify="left" if words else "right", no_wrap=not words, overflow="fold"
            )
        for p in result.pareto:
            table.add_row(
                f"{p['gpus']:,}",
                f"{p['tokens_per_s']:,.0f}",
                f"{p['tokens_per_s_per_gpu']:,.0f}",
                f"{100 * p['mfu']:.1f}%",
                escape(p["cluster"]),
                _plan_text(p),
            )
        print_table(table)
