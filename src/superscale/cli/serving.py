"""`superscale serve` and `serve-plan`: simulate a deployment; plan GPUs for a rate and SLOs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from superscale.cli.app import app, console, err_console, figure, print_json
from superscale.cli.limits import (
    MAX_SERVE_REQUESTS,
    check_work,
    in_range,
    plural,
    progress_bar,
    working,
)
from superscale.errors import SpecError
from superscale.readers import MAX_TRACE_BYTES, read_text_bounded
from superscale.report.serving import serving_facility
from superscale.scenario import load_scenario


def _read_trace(scenario_path: Path, trace: str, *, max_requests: int) -> Any:
    from superscale.inference.workload import parse_trace

    path = Path(trace)
    if not path.is_absolute():
        path = scenario_path.resolve().parent / path
    text = read_text_bounded(path, limit_bytes=MAX_TRACE_BYTES, what="trace")
    return parse_trace(text, origin=str(path), max_requests=max_requests)


def _planned_requests(spec: Any) -> int:
    """Requests a generated (not trace) workload will draw, before drawing them."""
    from superscale.inference.workload import DEFAULT_REQUESTS

    workload = spec.serving.workload
    if workload.arrival == "poisson" and workload.duration_s is not None:
        return int(workload.rate_per_s * workload.duration_s)
    return int(workload.requests or DEFAULT_REQUESTS)


@app.command()
def serve(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario YAML with a serving: section.", show_default=False)
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    max_requests: Annotated[
        int,
        typer.Option(
            min=1,
            help="Refuse a workload of more requests than this (work cap; 200k take about "
            "a minute).",
        ),
    ] = MAX_SERVE_REQUESTS,
) -> None:
    """Simulate serving: TTFT, TPOT and latency percentiles, throughput, goodput, memory.

    Example: [bold]superscale serve examples/serve-llama2-70b-h200.yaml[/]

    Requests arrive (Poisson, offline or a trace), are batched continuously with a token
    budget and chunked prefill, optionally on separate prefill and decode pools; each
    iteration's time comes from the model, the plan and the chip. Memory per GPU shows
    weights, workspace and the KV cache left, and the largest batch that fits.
    """
    from superscale.inference.serve import serve as run_serve

    spec = load_scenario(scenario)
    requests = None
    if spec.serving is not None and spec.serving.workload.arrival == "trace":
        assert spec.serving.workload.trace is not None  # WorkloadSpec requires it
        requests = _read_trace(scenario, spec.serving.workload.trace, max_requests=max_requests)
    elif spec.serving is not None:
        check_work(
            "serve",
            _planned_requests(spec),
            unit="requests",
            cap=max_requests,
            flag="--max-requests",
        )
    with progress_bar(err_console, "serve: simulating", unit="requests") as progress:
        result = run_serve(spec, requests=requests, name=scenario.stem, progress=progress)
    data = result.to_json()
    facility = serving_facility(spec, data)
    if facility is not None:
        warnings = [*data["warnings"], *facility.pop("warnings", [])]
        data.update(facility)
        data["warnings"] = warnings
    if json_out:
        print_json(data)
        return
    offered = None
    if spec.serving is not None and spec.serving.workload.arrival == "poisson":
        offered = spec.serving.workload.rate_per_s
    _print_serve(data, offered_per_s=offered)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{1e3 * value:,.1f}"


def _print_serve(data: dict[str, Any], *, offered_per_s: float | None = None) -> None:
    console.print(
        f"[bold]{data['model']}[/] on [bold]{data['cluster']}[/] ({data['gpus']} × "
        f"{data['chip']}, {data['weights']} weights, {data['precision']} GEMMs, "
        f"{data['kv_precision']} KV)"
    )
    for pool in data["pools"]:
        p, mem = pool["plan"], pool["memory"]
        fits = (
            "[green]fits[/]"
            if mem["fits"]
            else f"[bold red]does not fit[/]: over by {mem['over_by_gib']:.1f} GiB"
        )
        console.print(
            f"  {pool['role']:<7} {plural(pool['gpus'], 'GPU'):>10}  tp={p['tp']} pp={p['pp']} "
            f"ep={p['ep']} attention_dp={p['attention_dp']} dp={p['dp']}  weights "
            f"{mem['weights_gib']:.1f} + workspace {mem['workspace_gib']:.1f} + KV "
            f"{mem['kv_cache_gib']:.1f} GiB per GPU, {mem['kv_tokens_per_instance']:,} KV "
            f"tokens per instance, largest batch {pool['max_batch_that_fits']}  {fits}"
        )
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    if not data["fits"]:
        return
    thr, lat, good = data["throughput"], data["latency_s"], data["goodput"]
    steady = data.get("steady_state")
    table = Table(title=f"{data['completed']:,} requests in {data['duration_s']:.1f} s")
    for col in ("ms", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="left" if col == "ms" else "right")
    for key, label in (("ttft", "time to first token"), ("tpot", "time per output token"),
                       ("e2e", "end-to-end")):  # fmt: skip
        s = lat[key]
        table.add_row(label, _ms(s["mean"]), _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]))
    console.print(table)
    console.print(
        f"  throughput  {thr['requests_per_s']:,.2f} req/s · input {thr['input_tokens_per_s']:,.0f}"
        f" tok/s · output {thr['output_tokens_per_s']:,.0f} tok/s "
        f"({thr['output_tokens_per_s_per_gpu']:,.0f} per GPU): completed requests over the "
        "whole run, the drain after the last arrival included"
        + ("" if offered_per_s is None or steady else f"; offered {offered_per_s:,.2f} req/s")
    )
    if steady is not None:
        start, end = steady["window_s"]
        console.print(
            f"  steady      {steady['requests_per_s']:,.2f} req/s · output "
            f"{steady['output_tokens_per_s']:,.0f} tok/s: {steady['requests']:,} completions "
            f"from {start:,.1f} to {end:,.1f} s (the 10th to 90th percentile completion, "
            "without warm-up or drain)"
            + ("" if offered_per_s is None else f"; offered {offered_per_s:,.2f} req/s")
        )
    if good["ttft_p99_s"] is not None or good["tpot_p99_s"] is not None:
        console.print(
            f"  goodput     {good['requests_per_s']:,.2f} req/s within the SLOs "
            f"({100 * good['attainment']:.1f}% of requests); SLOs "
            f"{'met' if data['slo_met'] else '[bold red]missed[/]'} at p99"
        )
    _print_pools(data["pools"])
    if data["rejected"]:
        console.print(f"[yellow]warning:[/] {data['rejected']} requests never fit the KV cache")


_TIME_LABELS = (
    ("compute", "compute"),
    ("attention_and_sampling", "attention"),
    ("tp_comm", "tp"),
    ("ep_comm", "all-to-all exposed"),
    ("ep_comm_hidden", "hidden"),
    ("pp_comm", "pp"),
    ("draft", "draft"),
    ("overhead", "host"),
)


def _print_pools(pools: list[dict[str, Any]]) -> None:
    """Per-pool utilization, throughput, latency and where the engines' time went."""
    for pool in pools:
        if "time_s" not in pool:
            continue
        thr, lat, t = pool["throughput"], pool["latency_s"], pool["time_s"]
        figures = [f"utilization {100 * pool['utilization']:.0f}%"]
        if pool["role"] != "decode":
            figures.append(f"input {thr['input_tokens_per_s_per_gpu']:,.0f} tok/s/GPU")
            figures.append(f"TTFT p50 {_ms(lat['ttft']['p50'])} ms")
        if pool["role"] != "prefill":
            figures.append(f"output {thr['output_tokens_per_s_per_gpu']:,.0f} tok/s/GPU")
            figures.append(f"TPOT p50 {_ms(lat['tpot']['p50'])} ms")
        console.print(f"  {pool['role']:<7} pool  " + " · ".join(figures))
        busy = t["busy"] or 1.0
        shares = ", ".join(
            f"{label} {100 * t[key] / busy:.0f}%" for key, label in _TIME_LABELS if t[key] > 0
        )
        console.print(f"          time: {shares} (of busy time)")


@app.command("serve-plan")
def serve_plan(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario YAML with a serving: section.", show_default=False)
    ],
    rate: Annotated[float, typer.Option("--rate", help="Requests per second to serve.")],
    ttft_p99: Annotated[
        float | None,
        typer.Option(
            "--ttft-p99", help="TTFT p99 target, seconds; default the scenario's serving.slo."
        ),
    ] = None,
    tpot_p99: Annotated[
        float | None,
        typer.Option(
            "--tpot-p99", help="TPOT p99 target, seconds; default the scenario's serving.slo."
        ),
    ] = None,
    requests: Annotated[
        int, typer.Option(help="Requests per capacity simulation.", min=100, max=20_000)
    ] = 1500,
    no_disaggregation: Annotated[
        bool, typer.Option("--no-disaggregation", help="Only aggregated plans.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fewest GPUs, and the best plan, that serve --rate within the SLOs.

    Example: [bold]superscale serve-plan examples/serve-llama2-70b-h200.yaml --rate 20
    --ttft-p99 2 --tpot-p99 0.1[/]

    Tries aggregated instances (tp, pp, ep, attention data parallelism) and disaggregated
    prefill:decode groups, finds each one's largest rate within the SLOs by simulation,
    and prints the winner, the candidates and the Pareto front of output tokens/s per GPU
    against tokens/s per user.
    """
    from superscale.inference.plan_search import plan_capacity
    from superscale.scenario.serving import SloSpec

    in_range("--rate", rate, low=0, high=1e7, low_open=True)
    for name, value in (("--ttft-p99", ttft_p99), ("--tpot-p99", tpot_p99)):
        if value is not None:
            in_range(name, value, low=0, high=3600, low_open=True)
    spec = load_scenario(scenario)
    own = spec.serving.slo if spec.serving is not None else SloSpec()
    # The flags override the scenario's own SLOs (serving.slo), which are the default.
    slo = SloSpec(
        ttft_p99_s=own.ttft_p99_s if ttft_p99 is None else ttft_p99,
        tpot_p99_s=own.tpot_p99_s if tpot_p99 is None else tpot_p99,
    )
    with working(err_console, "simulating candidate plans"):
        out = plan_capacity(
            spec,
            rate_per_s=rate,
            slo=slo,
            requests=requests,
            disaggregation=not no_disaggregation,
        )
    best = out["best"]
    if json_out:
        print_json(out)
        if best is None:
            raise typer.Exit(1)
        return
    if best is None:
        console.print("[bold red]no plan meets the SLOs[/] at any rate on this hardware")
        raise typer.Exit(1)
    console.print(
        f"[bold]{plural(best['total_gpus'], 'GPU')}[/]: {best['units']} × {best['plan']} "
        f"({best['rate_per_s']:.2f} req/s each, TTFT p99 {_ms(best['ttft_p99_s'])} ms, "
        f"TPOT p99 {_ms(best['tpot_p99_s'])} ms)"
    )
    table = Table(title="candidates (fewest GPUs first)")
    for col in ("plan", "GPUs", "req/s per unit", "tok/s per GPU", "tok/s per user"):
        table.add_column(col, justify="left" if col == "plan" else "right")
    for c in out["candidates"][:12]:
        user = c["output_tokens_per_s_per_user"]
        table.add_row(c["plan"], str(c["total_gpus"]), f"{c['rate_per_s']:.2f}",
                      f"{c['output_tokens_per_s_per_gpu']:.0f}",
                      "—" if user is None else f"{user:.1f}")  # fmt: skip
    console.print(table)
    console.print("[bold]Pareto front[/] (tokens/s per GPU against tokens/s per user)")
    for p in out["pareto_front"]:
        console.print(
            f"  {p['output_tokens_per_s_per_gpu']:8.0f} tok/s/GPU  "
            f"{p['output_tokens_per_s_per_user']:7.1f} tok/s/user  {p['plan']}"
        )


def print_inference_validation(
    *, json_out: bool, source: str | None, profile: str | None = None
) -> None:
    """`superscale validate --inference`: serving predictions against published rows,
    every chip priced by `profile` ('fitted' or a file) when one is given."""
    from superscale.validate.inference import compare_all, summarize_errors

    with progress_bar(err_console, "validate --inference", unit="rows") as progress:
        rows = compare_all(progress, profile=profile)
    if source is not None:
        known = sorted({r.source_key for r in rows})
        if source not in known:
            raise SpecError(f"--source: unknown source '{source}' (known: {', '.join(known)})")
        rows = [r for r in rows if r.source_key == source]
    summary = summarize_errors(rows)
    if json_out:
        print_json(
            {
                "rows": [
                    {
                        "row_id": r.row_id,
                        "source_key": r.source_key,
                        "model": r.model,
                        "hardware": r.hardware,
                        "framework": r.framework,
                        "metric": r.metric,
                        "unit": r.unit,
                        "kind": r.kind,
                        "published": r.published,
                        "predicted": r.predicted,
                        "error_pct": r.error_pct,
                        "plan": r.plan,
                        "skipped": r.skipped or None,
                    }
                    for r in rows
                ],
                "summary": summary,
            }
        )
        return
    _print_inference_tables(rows)
    for label, key in (("throughput rows", "throughput"), ("latency rows", "latency")):
        stats = summary[key]
        if stats["rows"]:
            console.print(
                f"[bold]  {label:<18} {stats['rows']:3d} rows  mean |error| "
                f"{stats['mean_abs_error_pct']:5.1f}%  max {stats['max_abs_error_pct']:5.1f}%[/]"
            )


def _short(text: str) -> str:
    """A row's label without its parenthesised detail ('vLLM (--num-scheduler-steps 10)'
    -> 'vLLM'); --json keeps the whole text."""
    return text.split(" (")[0]


_UNITS = {"tokens/s per system": "tok/s"}  # short forms for a table cell


def _print_inference_tables(rows: list[Any]) -> None:
    """One table per source: hardware, framework and plan, the published figure, the
    prediction and its error (the model and unit in the title where the source has one);
    skipped rows listed under their table. Labels are shortened; --json has them whole."""
    by_source: dict[str, list[Any]] = {}
    for r in rows:
        by_source.setdefault(r.source_key, []).append(r)
    for source_key, group in by_source.items():
        shown = [r for r in group if r.error_pct is not None]
        models = {_short(r.model) for r in shown}
        units = {r.unit for r in shown}
        title = source_key + "".join(
            f", {next(iter(values))}" for values in (models, units) if len(values) == 1
        )
        table = Table(title=f"{title}: predicted vs published")
        table.add_column("row", justify="right", no_wrap=True)
        if len(models) > 1:
            table.add_column("model", overflow="fold")
        table.add_column("hardware", overflow="fold")
        table.add_column("software", overflow="fold")
        table.add_column("metric", overflow="fold")
        for col in ("published", "predicted"):  # figures never wrap or crop
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("error", justify="right", no_wrap=True)
        for r in shown:
            metric = r.metric.replace(" (system)", "")
            table.add_row(
                str(r.row_id),
                *([_short(r.model)] if len(models) > 1 else []),
                _short(r.hardware),
                f"{_short(r.framework)} {r.plan}",
                metric if len(units) == 1 else f"{metric} ({_UNITS.get(r.unit, r.unit)})",
                figure(r.published),
                figure(r.predicted),
                f"{r.error_pct:+.1f}%",
            )
        if table.row_count:
            console.print(table)
        for r in group:
            if r.error_pct is None:
                console.print(escape(f"  row {r.row_id} ({_short(r.model)}) skipped: {r.skipped}"))


def _workload_words(serving: Any) -> str:
    w = serving.workload
    lengths = (
        f"prompts {w.prompt_tokens.distribution} {w.prompt_tokens.mean:g}, outputs "
        f"{w.output_tokens.distribution} {w.output_tokens.mean:g} tokens"
    )
    if w.arrival == "poisson":
        return f"poisson at {w.rate_per_s:g} req/s, {lengths}"
    if w.arrival == "trace":
        return f"trace {w.trace}"
    if w.arrival == "closed":
        return f"closed loop, {w.users:,} users, think time {w.think_time_s:g} s, {lengths}"
    return f"offline (all at t=0), {lengths}"


def _ffn_words(plan: dict[str, Any], memory: dict[str, Any]) -> str:
    ffn = plan.get("ffn_disaggregation")
    if not ffn:
        return ""
    return (
        f"; attention/FFN split: {ffn['ffn_gpus']} expert GPUs holding "
        f"{memory['ffn_weights_gib']:.1f} GiB each, {ffn['micro_batches']} micro-batches"
    )


def check_serving(path: str, scenario: Any, *, as_json: bool) -> None:
    """`superscale check` on a serving scenario: its words and how each pool is laid out."""
    from superscale.hardware.profile import efficiency_source
    from superscale.inference.deploy import resolve as resolve_deployment

    serving = scenario.serving
    dep = resolve_deployment(scenario)
    efficiency = efficiency_source(scenario.cluster.chip)  # where its kernel rates come from
    words = {
        "profile": scenario.cluster.profile,
        "efficiency": efficiency,
        "precision": dep.precision,
        "weights": dep.weight_format,
        "bytes_per_weight": dep.weight_bytes,
        "kv_precision": dep.kv_precision,
        "attention_precision": dep.attention_precision,
        "workload": serving.workload.model_dump(mode="json"),
        "disaggregated": dep.disaggregated,
        "speculative": None if dep.speculation is None else dep.speculation.method,
    }
    pools: list[dict[str, Any]] = [
        {
            "role": p.role,
            "gpus": p.gpus,
            "plan": {**p.plan.model_dump(mode="json"), "dp": p.instances},
            "moe_dispatch": p.dispatch,
            "memory": p.budget.to_json(),
        }
        for p in dep.pools
    ]
    if as_json:
        print_json({**words, "gpus": dep.gpus, "fits": dep.fits, "pools": pools,
                    "warnings": list(dep.warnings)})  # fmt: skip
        return
    console.print(f"[bold]scenario[/] {path} (serving)")
    console.print(f"  efficiency {escape(efficiency)}")
    console.print(
        f"  precision  {dep.precision} GEMMs, {dep.weight_format} weights "
        f"({dep.weight_bytes:.4g} bytes/weight), {dep.kv_precision} KV, "
        f"{dep.attention_precision} attention"
    )
    console.print(f"  workload   {_workload_words(serving)}")
    for pool in pools:
        p, mem = pool["plan"], pool["memory"]
        console.print(
            f"  {pool['role']:<10} {plural(pool['gpus'], 'GPU')}: tp {p['tp']} · pp {p['pp']}"
            f" · attention_dp {p['attention_dp']} · dp {p['dp']}, ep {p['ep']}; weights "
            f"{mem['weights_gib']:.1f} GiB, KV {mem['kv_cache_gib']:.1f} GiB per GPU "
            f"({mem['kv_tokens_per_instance']:,} tokens per instance)"
            + _ffn_words(p, mem)
            + ("" if mem["fits"] else " [bold red]does not fit[/]")
        )
    for warning in dep.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print("[green]valid[/]" if dep.fits else "[yellow]valid, but does not fit[/]")
