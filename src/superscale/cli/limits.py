"""Work caps and option bounds for the verbs: refuse, before starting, what would not finish.

Every verb that does work states an estimate of it first (plans, events, requests, GPUs,
rows) and compares it with a cap that a flag raises; an option outside its range, or not a
finite number, is refused with its name and the range. Both raise `SpecError`, so the user
sees one line and exit code 2, never a run that hangs or eats the machine's memory.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from superscale.errors import SpecError

# Default caps (each raised by the flag named beside it).
MAX_SEARCH_PLANS = 2_000_000  # search --max-plans: ~20 s at 100k plans/s
MAX_SEARCH_GPUS = 131_072  # search --max-gpus: the largest cluster a search routes
MAX_EVENT_TASKS = 1_000_000  # simulate --max-tasks: ~1 min, ~0.6 GB (786k tasks: 48 s)
MAX_SERVE_REQUESTS = 200_000  # serve --max-requests: ~a minute of simulation
MAX_COLLECTIVE_GPUS = 131_072  # collective --max-gpus
MAX_COLLECTIVE_ROWS = 64  # sizes a collective sweep prints (8 B to 8 GiB by 2 is 31)
MAX_COLLECTIVE_BYTES = 2**44  # 16 TiB: past any one collective's payload


def in_range(option: str, value: float, *, low: float, high: float, low_open: bool = False) -> None:
    """Refuse a non-finite `value`, or one outside [low, high] ((low, high] if low_open).

    Raises:
        SpecError: "--rate must be a finite number in (0, 1e+07], got nan".
    """
    bracket = "(" if low_open else "["
    shown = f"{bracket}{low:g}, {high:g}]"
    if isinstance(value, bool) or not math.isfinite(value):
        raise SpecError(f"{option} must be a finite number in {shown}, got {value}")
    if value > high or value < low or (low_open and value == low):
        raise SpecError(f"{option} must be in {shown}, got {value:g}")


def check_work(what: str, estimate: int, *, unit: str, cap: int, flag: str) -> None:
    """Refuse work whose `estimate` exceeds `cap`, naming the flag that raises it.

    Raises:
        SpecError: "serve: 5,000,000 requests exceed the cap of 200,000; ask for less or
            raise it with --max-requests N".
    """
    if estimate > cap:
        raise SpecError(
            f"{what}: {estimate:,} {unit} exceed the cap of {cap:,}; ask for less or raise "
            f"it with {flag} N"
        )


def event_tasks(
    *, micro_batches: int, pp: int, virtual_stages: int, gpus: int, all_ranks: bool
) -> int:
    """Tasks the event engine runs for a step: forward, backward and weight-gradient work
    of every micro-batch on every model chunk, on each simulated rank (one per stage, or
    every GPU)."""
    ranks = gpus if all_ranks else pp
    return micro_batches * virtual_stages * 3 * ranks


@contextmanager
def working(console: Console, message: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner with the elapsed time on `console` (stderr) while a long step runs; only on
    a terminal, and gone when it ends, so piped and --json output never see it."""
    if not enabled or not console.is_terminal:
        yield
        return
    with Progress(
        SpinnerColumn(),
        TextColumn(message),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        bar.add_task(message, total=None)
        yield


BAR_AFTER_S = 1.0  # a bar appears only for work that runs longer than this


@contextmanager
def progress_bar(
    console: Console, message: str, *, unit: str = ""
) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on `console` (stderr) fed by a library's `progress(done, total)`
    callback; only on a terminal, drawn once the work has run for `BAR_AFTER_S`, and
    gone when it ends, so piped and --json output never see it. Yields None off a
    terminal (the library then reports nothing)."""
    if not console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn(message),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    start = time.monotonic()
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            if time.monotonic() - start < BAR_AFTER_S:
                return
            bar.start()
            task.append(bar.add_task(message, total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def capped_workers(workers: int) -> tuple[int, str | None]:
    """`workers` limited to the CPU count, and a note when it was lowered.

    Raises:
        SpecError: workers < 1.
    """
    if workers < 1:
        raise SpecError(f"--workers must be >= 1, got {workers}")
    cpus = cpu_count()
    if workers <= cpus:
        return workers, None
    return cpus, f"--workers {workers} lowered to the {cpus} CPUs of this machine"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """ "1 GPU", "2 GPUs", "1 cabinet", "3 cabinets" (thousands separated)."""
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count:,} {word}"
