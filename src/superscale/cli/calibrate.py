"""`superscale calibrate`: measure this machine's device into a profile; check a real step.

Thin: the measurements live in `superscale.calibrate.bench`, the training check in
`superscale.calibrate.check`, the profile schema in `superscale.hardware.profile`. PyTorch is
imported only when this verb runs, so the rest of the CLI stays torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from superscale.cli.app import app, console, err_console, print_json
from superscale.errors import SpecError
from superscale.hardware.profile import EfficiencyProfile, load_profile

DEFAULT_OUT = "superscale-profile.yaml"


@contextmanager
def _progress(title: str) -> Iterator[Callable[[int, int, str], None]]:
    bar = Progress(
        TextColumn(f"[bold]{escape(title)}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("", total=None)

    def update(done: int, total: int, label: str) -> None:
        bar.update(task, completed=done, total=total, description=escape(label))

    with bar:
        yield update


def _write_profile(profile: EfficiencyProfile, out: Path) -> None:
    text = yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False, width=100)
    header = (
        "# superscale efficiency profile: achieved rates of one device "
        "(superscale calibrate).\n# Use it: superscale.hardware.profile.load_profile(path); "
        "catalog chips read catalog/profiles/<chip>.yaml.\n"
    )
    try:
        out.write_text(header + text, encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"--out {out}: cannot write: {exc.strerror}") from None


def _check_writable(out: Path) -> None:
    """Refuse an --out that cannot be written: a directory, or a missing parent folder."""
    if out.is_dir():
        raise SpecError(f"--out {out}: is a directory; give a file name such as {DEFAULT_OUT}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise SpecError(f"--out {out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise SpecError(f"--out {out}: the folder {parent} is not writable")


def _summary(profile: EfficiencyProfile) -> str:
    peaks = ", ".join(f"{p} {v:,.3g} TFLOP/s" for p, v in profile.peak_tflops.items())
    bandwidth = profile.best_memory_bytes_per_s / 1e9
    points = sum(len(v) for v in profile.matmul.values())
    return (
        f"{profile.device.name}: best matmul {peaks}; copy {bandwidth:,.3g} GB/s "
        f"({points} GEMM shapes, {len(profile.memory)} copy sizes, "
        f"{sum(len(v) for v in profile.attention.values())} attention points, "
        f"{len(profile.collectives)} collective points)"
    )


def _print_check(report: dict[str, Any]) -> None:
    model = report["model"]
    console.print(
        f"[bold]calibrate --check[/] on {escape(report['device'])}: GPT "
        f"{model['params'] / 1e6:,.1f} M params ({model['layers']} layers × {model['hidden']}), "
        f"batch {model['batch']} × seq {model['seq_len']}, bf16 autocast + AdamW, "
        f"median of {report['steps']} steps"
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("", "measured", "predicted", "error"):
        table.add_column(header, justify="left" if not header else "right")
    table.add_row(
        "step time",
        f"{report['measured_step_s']:.4g} s",
        f"{report['predicted_step_s']:.4g} s",
        f"{report['error_pct']:+.1f}%",
    )
    table.add_row(
        "peak memory",
        f"{report['measured_peak_gib']:.3g} GiB",
        f"{report['predicted_peak_gib']:.3g} GiB",
        f"{report['memory_error_pct']:+.1f}%",
    )
    console.print(table)


@app.command("calibrate")
def calibrate_command(
    device: Annotated[
        str, typer.Option(help="Torch device to measure: cpu, cuda or cuda:N.")
    ] = "cpu",
    quick: Annotated[
        bool, typer.Option("--quick", help="Small grid and a tiny GPT (seconds on a CPU).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help=f"Where to write the profile YAML (default {DEFAULT_OUT})."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Train a small GPT for a few steps and print measured against predicted "
            "step time and peak memory.",
        ),
    ] = False,
    profile: Annotated[
        Path | None,
        typer.Option(help="With --check: use this profile instead of measuring a new one."),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="With --check: timed training steps.")] = 3,
    ranks: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes for collective benchmarks (gloo on CPU, nccl on GPUs); "
            "0: every CUDA device (none on the CPU).",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="With --check: print JSON.")] = False,
) -> None:
    """Measure the device into an efficiency profile the cost model reads; check a real step.

    Microbenchmarks with PyTorch (pip install 'superscale\\[torch]'): GEMMs by shape and
    precision, copies by size, fused attention by sequence length and head size, and
    collectives when several devices are present. Each point is the median of repeats
    after warm-up, on fresh random inputs, timed with CUDA events on GPUs.

    [bold]superscale calibrate --quick --out cpu.yaml[/]  profile this CPU in seconds
    [bold]superscale calibrate --device cuda:0 --out h200.yaml[/]  profile a GPU
    [bold]superscale calibrate --check --profile h200.yaml --device cuda[/]  a real step
    """
    from superscale.calibrate import require_torch

    if profile is not None and not check:
        raise SpecError("--profile is used with --check (it reads a profile instead of measuring)")
    loaded = load_profile(profile) if profile is not None else None
    if loaded is None:
        _check_writable(out or Path(DEFAULT_OUT))  # before minutes of measuring, not after
    require_torch()
    from superscale.calibrate.bench import measure, resolve_device

    dev = resolve_device(device)
    if loaded is not None and loaded.device.kind != dev.type:
        raise SpecError(
            f"--profile {profile}: measured on a {loaded.device.kind} device, "
            f"but --device is {device}"
        )
    if loaded is None:
        import torch

        count = torch.cuda.device_count() if dev.type == "cuda" else 1
        n_ranks = ranks or (count if device == "cuda" else 1)
        if dev.type == "cuda" and n_ranks > count:
            raise SpecError(f"--ranks {n_ranks}: only {count} CUDA device(s) present")
        with _progress(f"calibrate {dev}") as update:
            loaded = measure(dev, quick=quick, seed=seed, ranks=n_ranks, progress=update)
        target = out or Path(DEFAULT_OUT)
        _write_profile(loaded, target)
        err_console.print(f"wrote {escape(str(target))}: {escape(_summary(loaded))}")
    if not check:
        return
    from superscale.calibrate.check import CHECK_GPT, QUICK_GPT
    from superscale.calibrate.check import check as run_check

    with _progress("check") as update:
        report = run_check(
            loaded,
            dev,
            cfg=QUICK_GPT if quick else CHECK_GPT,
            steps=steps,
            seed=seed,
            progress=update,
        )
    if as_json:
        print_json(report)
        return
    _print_check(report)
