"""`superscale simulate` and `validate`: training step time, memory and MFU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from superscale.cli.app import (
    MegatronCount,
    MegatronSystem,
    app,
    console,
    err_console,
    figure,
    print_json,
)
from superscale.cli.facility import facility_lines
from superscale.cli.limits import (
    MAX_EVENT_TASKS,
    check_work,
    event_tasks,
    progress_bar,
)
from superscale.costs.host import HOST_LAUNCH_S
from superscale.errors import SpecError
from superscale.pipeline import ENGINES, simulate_timeline
from superscale.report.result import BREAKDOWN_KEYS, Result
from superscale.scenario import Scenario, load_scenario, read_yaml_file
from superscale.simulate.event import Timeline
from superscale.simulate.trace import chrome_trace

_BAR_WIDTH = 40
_LABELS = {
    "compute": "compute",
    "host": "waiting on the host",
    "tp_comm": "tensor-parallel comm",
    "cp_comm": "context-parallel comm",
    "ep_comm": "expert all-to-all",
    "pp_comm": "pipeline send/recv",
    "pp_bubble": "pipeline bubble",
    "dp_comm": "data-parallel comm",
    "other": "optimizer + other",
}


@app.command()
def simulate(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML (model, cluster, training, parallel); with --from-megatron "
            "optional, its model, cluster and training fill what the arguments leave out.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="analytical (closed form, instant) or event (discrete events: "
            "pipeline schedules, overlap, shared links)."
        ),
    ] = "analytical",
    ranks: Annotated[
        str,
        typer.Option(
            help="Event engine: 'stage' (one rank per pipeline stage, any size) or "
            "'all' (every GPU; small clusters)."
        ),
    ] = "stage",
    trace: Annotated[
        Path | None,
        typer.Option(help="Event engine: write a Chrome trace (open in ui.perfetto.dev)."),
    ] = None,
    from_megatron: Annotated[
        str | None,
        typer.Option(
            "--from-megatron",
            help="A Megatron-LM command line (quoted; a torchrun prefix is fine) to read the "
            "model, plan and batch from.",
            show_default=False,
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(help="With --from-megatron: a catalog cluster to run on.", show_default=False),
    ] = None,
    system: MegatronSystem = None,
    count: MegatronCount = None,
    max_tasks: Annotated[
        int,
        typer.Option(
            min=1,
            help="Event engine: refuse a step of more tasks than this (micro-batches × "
            "chunks × 3 × simulated ranks; a million take about a minute).",
        ),
    ] = MAX_EVENT_TASKS,
) -> None:
    """Predict one training step: time, where it goes, MFU and memory per GPU.

    Example: [bold]superscale simulate examples/llama3-70b-64xh100.yaml[/]
    or [bold]superscale simulate SCENARIO.yaml --engine event --trace step.json[/]
    or [bold]superscale simulate --from-megatron "--num-layers 32 ..." --cluster h100-16k[/]

    The step is split into compute, exposed communication per parallel group, pipeline
    bubble and optimizer; communication that overlap hid behind compute is shown apart
    ("hidden behind compute"). Memory is the peak per GPU (weights, gradients, optimizer
    states, activations, workspace) and whether it fits in HBM. With --json the stable
    result keys (step_time_s, tokens_per_s, mfu, memory, breakdown_s, hidden_comm_s, ...)
    go to stdout.
    """
    if engine not in ENGINES:
        raise SpecError(f"--engine: unknown engine '{engine}' (allowed: {', '.join(ENGINES)})")
    if trace is not None and engine != "event":
        raise SpecError("--trace needs --engine event (the analytical engine has no timeline)")
    if ranks not in {"stage", "all"}:
        raise SpecError(f"--ranks: unknown mode '{ranks}' (allowed: stage, all)")
    if ranks == "all" and engine != "event":
        raise SpecError("--ranks all needs --engine event (the analytical engine has no ranks)")
    loaded, name = _simulate_scenario(
        scenario, from_megatron, cluster=cluster, system=system, count=count
    )
    if engine == "event":
        _check_event_work(loaded, all_ranks=ranks == "all", cap=max_tasks)
    with progress_bar(err_console, "event engine: simulating", unit="tasks") as bar:
        result, timeline = simulate_timeline(
            loaded,
            name=name,
            engine=engine,
            ranks=ranks,
            spans=trace is not None,
            progress=bar if engine == "event" else None,
        )
    if trace is not None and timeline is not None:
        _write_trace(trace, timeline, title=name)
    if json_out:
        print_json(result.to_json())
        return
    _print_result(result)


def _check_event_work(scenario: Scenario, *, all_ranks: bool, cap: int) -> None:
    training, p = scenario.require_training(), scenario.parallel
    tasks = event_tasks(
        micro_batches=training.global_batch // (scenario.dp * p.micro_batch),
        pp=p.pp,
        virtual_stages=p.virtual_stages,
        gpus=scenario.cluster.gpus,
        all_ranks=all_ranks,
    )
    check_work("simulate --engine event", tasks, unit="tasks", cap=cap, flag="--max-tasks")


def _simulate_scenario(
    path: Path | None,
    megatron: str | None,
    *,
    cluster: str | None,
    system: str | None,
    count: int | None,
) -> tuple[Scenario, str]:
    """The scenario to simulate: a file, a Megatron command line, or both (file as base)."""
    if megatron is None:
        if cluster or system or count is not None:
            raise SpecError(
                "--cluster, --system and --count go with --from-megatron (a SCENARIO file "
                "names its own cluster)"
            )
        if path is None:
            raise SpecError('give a SCENARIO file or --from-megatron "ARGS"')
        return load_scenario(path), path.stem
    from superscale.parallelism.megatron import parse_megatron

    if cluster and (system or count is not None):
        raise SpecError("--cluster and --system/--count are exclusive; give one")
    if count is not None and not system:
        raise SpecError("--count needs --system NAME")
    hardware: str | dict[str, Any] | None = cluster
    if system:
        hardware = {"system": system} if count is None else {"system": system, "count": count}
    base = None
    if path is not None:
        base = read_yaml_file(path)
        if not isinstance(base, dict):
            raise SpecError(f"{path}: a scenario must be a mapping (model, cluster, training)")
        model = base.get("model")
        if isinstance(model, dict) and isinstance(model.get("hf_config"), str):
            config = Path(model["hf_config"])  # relative to the file, as load_scenario reads it
            base["model"] = {**model, "hf_config": str(path.resolve().parent / config)}
    run = parse_megatron(megatron, cluster=hardware, base=base)
    if run.ignored:
        err_console.print(f"[dim]note: ignored Megatron flags: {escape(', '.join(run.ignored))}[/]")
    for warning in run.warnings:
        err_console.print(f"[dim]note: {escape(warning)}[/]")
    return load_scenario(run.scenario), path.stem if path is not None else "megatron"


def _write_trace(path: Path, timeline: Timeline, *, title: str) -> None:
    try:
        path.write_text(json.dumps(chrome_trace(timeline, title=title)), encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"--trace: cannot write {path}: {exc.strerror}") from None
    err_console.print(
        f"wrote {path} ({len(timeline.spans):,} spans; open in ui.perfetto.dev or chrome://tracing)"
    )


def _print_result(result: Result) -> None:
    data = result.to_json()
    mem = data["memory"]
    plan = data["plan"]
    console.print(
        f"[bold]{result.model}[/] on [bold]{result.cluster}[/] ({result.gpus:,} × {result.chip},"
        f" {result.precision})  plan tp={plan['tp']} pp={plan['pp']} cp={plan['cp']} "
        f"ep={plan['ep']} dp={plan['dp']} mb={plan['micro_batch']}×{plan['micro_batches']} "
        f"{plan['schedule']} zero={plan['zero']} recompute={plan['recompute']}"
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("step time", f"{data['step_time_s']:.3f} s")
    table.add_row(
        "tokens/s", f"{data['tokens_per_s']:,.0f}  ({data['tokens_per_s_per_gpu']:,.0f} per GPU)"
    )
    table.add_row("model TFLOP/s per GPU", f"{data['model_tflops_per_gpu']:.1f}")
    table.add_row("MFU / HFU", f"{100 * data['mfu']:.1f}% / {100 * data['hfu']:.1f}%")
    fits = (
        f"[green]fits[/] ({mem['hbm_gib']:.0f} GiB HBM)"
        if data["fits"]
        else f"[bold red]does not fit[/]: needs {mem['peak_gib_per_gpu']:.1f} GiB, HBM "
        f"{mem['hbm_gib']:.0f} GiB, over by {mem['over_by_gib']:.1f} GiB"
    )
    table.add_row("memory per GPU", f"{mem['peak_gib_per_gpu']:.1f} GiB  {fits}")
    table.add_row(
        "",
        f"weights {mem['params_gib']:.1f} · grads {mem['grads_gib']:.1f} · "
        f"optimizer {mem['optimizer_gib']:.1f} · activations "
        f"{mem['activations_gib']:.1f} · workspace {mem['workspace_gib']:.1f} GiB",
    )
    console.print(table)
    console.print()
    console.print("[bold]where the step goes[/]")
    _print_breakdown(data["breakdown_s"], data["step_time_s"])
    _print_hidden(data.get("hidden_comm_s") or {})
    lines = facility_lines(data)
    if lines:
        console.print()
        console.print("[bold]facility, reliability and cost[/]")
        for line in lines:
            console.print(line)
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")


def _print_breakdown(breakdown: dict[str, float], step_s: float) -> None:
    # label 24 + figures 20 + bar: the bar shrinks so a full one never wraps the line
    width = max(10, min(_BAR_WIDTH, console.width - 46))
    for key in BREAKDOWN_KEYS:
        if key == "exposed_comm":
            continue
        value = breakdown[key]
        share = value / step_s if step_s else 0.0
        bar = "█" * round(min(share, 1.0) * width)
        console.print(f"  {_LABELS[key]:<22} {value:9.3f} s {100 * share:5.1f}%  [cyan]{bar}[/]")
    console.print(
        f"  {'exposed communication':<22} {breakdown['exposed_comm']:9.3f} s "
        f"{100 * breakdown['exposed_comm'] / step_s:5.1f}%"
    )


def _print_hidden(hidden: dict[str, float]) -> None:
    """Collective time that ran under compute, which the breakdown above does not count."""
    shown = {k: v for k, v in hidden.items() if v >= 0.0005}
    if shown:
        console.print("  hidden behind compute (not in the step above)")
    for key, value in shown.items():
        console.print(f"    {_LABELS[key]:<20} {value:9.3f} s")


@app.command()
def validate(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print rows and errors as JSON.")
    ] = False,
    source: Annotated[str | None, typer.Option(help="Only rows of this source_key.")] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Training rows: analytical, event, or both (each engine's errors apart)."
        ),
    ] = "analytical",
    inference: Annotated[
        bool, typer.Option("--inference", help="Serving rows (inference-published.csv).")
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="fitted|FILE",
            help="Read every chip's times from this profile, as cluster.profile does "
            "('fitted': the component-fitted profiles); training and --inference rows.",
        ),
    ] = None,
) -> None:
    """Compare predictions with published training runs, row by row.

    Example: [bold]superscale validate[/]
    or [bold]superscale validate --source nemo_2407[/]

    Reads the shipped copy of shared/reference/training-published.csv (Megatron-LM 2021,
    Korthikanti et al. 2022, Megatron-Core 2024, NeMo 24.07, and the held-out Megatron-Bridge
    25.11 rows), builds each row's scenario from the catalog and the published plan, and
    prints the metric the row reports (TFLOP/s per GPU, MFU, or measured tokens/s) beside the
    prediction, with the error per row and the mean absolute error per source, on the tuned
    and held-out rows, and overall. One set of efficiency parameters per chip serves every
    row; --engine both reports each engine apart; --profile fitted prices every chip from
    the profiles fitted to component measurements instead of the catalog's defaults.

    One figure is fitted on these rows: the host time per kernel launch (no component row
    measures it), on a train split declared by row number; its train and test splits are
    printed apart. Refit it with python -m superscale.validate.residual.
    """
    if inference:
        from superscale.cli.serving import print_inference_validation

        print_inference_validation(json_out=json_out, source=source, profile=profile)
        return
    from superscale.validate.training import compare_all, summarize_errors

    if engine not in (*ENGINES, "both"):
        allowed = ", ".join((*ENGINES, "both"))
        raise SpecError(f"--engine: unknown engine '{engine}' (allowed: {allowed})")
    engines = ENGINES if engine == "both" else (engine,)
    results = {}
    for name in engines:
        with progress_bar(err_console, f"validate ({name}): predicting", unit="rows") as bar:
            results[name] = compare_all(engine=name, source=source, profile=profile, progress=bar)
    summaries = {name: summarize_errors(rows) for name, rows in results.items()}
    if json_out:
        if engine == "both":
            print_json(
                {
                    name: {"rows": [_row_json(r) for r in rows], "summary": summaries[name]}
                    for name, rows in results.items()
                }
            )
        else:
            rows = results[engine]
            print_json({"rows": [_row_json(r) for r in rows], "summary": summaries[engine]})
        return
    _print_validation_tables(results)
    for name, summary in summaries.items():
        if len(summaries) > 1:
            console.print(f"[bold]{name} engine[/]")
        _print_error_summary(summary)


# Short column labels of the metrics a reference row reports (the JSON keeps the keys).
_METRIC_LABELS = {
    "hardware_tflops_per_gpu": "HW TFLOP/s",
    "model_tflops_per_gpu": "TFLOP/s",
    "tokens_per_s_per_gpu": "tok/s",
    "mfu_pct": "MFU %",
}


def _print_validation_tables(results: dict[str, list[Any]]) -> None:
    """One table per source: the published figure, each engine's prediction and error;
    skipped rows are listed under their table with the reason, so the columns stay
    narrow enough for an 80-column terminal."""
    names = list(results)
    first = results[names[0]]
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(first):
        by_source.setdefault(r.source_key, []).append(i)
    for source_key, indices in by_source.items():
        metrics = {first[i].metric for i in indices if not first[i].skipped}
        one_metric = len(metrics) == 1
        metric = next(iter(metrics)) if one_metric else ""
        shown = f", {_METRIC_LABELS.get(metric, metric)} per GPU" if one_metric else ""
        table = Table(
            title=f"{source_key}: predicted vs published{shown}",
            caption="predicted by each engine" if len(names) > 1 else f"{names[0]} engine",
        )
        table.add_column("row", justify="right", no_wrap=True)
        table.add_column("model", overflow="fold", min_width=10)
        table.add_column("GPUs", overflow="fold", min_width=8)
        if not one_metric:
            table.add_column("metric (per GPU)", overflow="fold")
        table.add_column("published", justify="right", no_wrap=True)
        # with both engines the second shows its error only, to fit 80 columns (--json
        # has every figure)
        table.add_column(
            names[0] if len(names) > 1 else "predicted", justify="right", min_width=len(names[0])
        )
        table.add_column("error", justify="right", no_wrap=True)
        for name in names[1:]:
            table.add_column(f"{name} err", justify="right", no_wrap=True)
        skipped = []
        for i in indices:
            r = first[i]
            if r.skipped:
                skipped.append(f"  row {r.row_id} ({r.model}) skipped: {r.skipped}")
                continue
            cells = [
                str(r.row_id),
                r.model,
                f"{r.gpus} {r.gpu_type.removeprefix('DGX-').split(' (')[0]}",
                *([] if one_metric else [_METRIC_LABELS.get(r.metric, r.metric)]),
                figure(r.published),
                figure(r.predicted),
            ]
            for name in names:  # every engine's error; the first one's figure above
                err = results[name][i].error_pct
                cells.append("" if err is None else f"{err:+.1f}%")
            table.add_row(*cells)
        if table.row_count:
            console.print(table)
        for line in skipped:
            console.print(escape(line))


def _print_error_summary(summary: dict[str, Any]) -> None:
    """Mean and worst error per source, on the tuned and held-out rows, and overall."""
    for name, stats in summary["per_source"].items():
        if stats["rows"]:
            console.print(
                f"  {name:<24} {stats['rows']:3d} rows  mean |error| "
                f"{stats['mean_abs_error_pct']:5.1f}%  max {stats['max_abs_error_pct']:5.1f}%"
            )
    labels = (
        ("tuned rows", "tuned"),
        ("held-out rows", "held_out"),
        ("all rows", "overall"),
        ("rows with architecture", "with_architecture"),
        ("residual's train split", "train_split"),
        ("residual's test split", "test_split"),
    )
    for label, key in labels:
        stats = summary[key]
        if stats["rows"]:
            console.print(
                f"[bold]  {label:<24} {stats['rows']:3d} rows  mean |error| "
                f"{stats['mean_abs_error_pct']:5.1f}%  max {stats['max_abs_error_pct']:5.1f}%[/]"
            )
    console.print(
        f"  one fitted residual: {HOST_LAUNCH_S * 1e6:g} us of host time per kernel launch "
        "(costs/host.py), fitted on the train split; refit with "
        "python -m superscale.validate.residual"
    )


def _row_json(r: Any) -> dict[str, Any]:
    return {
        "row_id": r.row_id,
        "source_key": r.source_key,
        "model": r.model,
        "gpus": r.gpus,
        "gpu_type": r.gpu_type,
        "metric": r.metric,
        "published": r.published,
        "predicted": r.predicted,
        "error_pct": r.error_pct,
        "skipped": r.skipped or None,
    }
