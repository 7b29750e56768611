"""The whole flow for one scenario: spec → plan → program → step time → result.

The result carries facility, reliability and cost sections (`superscale.facility.assess`)
at the step's utilization and throughput.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from superscale.errors import SpecError
from superscale.facility import assess
from superscale.parallelism.plan import resolve
from superscale.report.result import Result, summarize
from superscale.scenario import Scenario
from superscale.simulate.analytical import estimate_step
from superscale.simulate.event import Timeline, simulate_events
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory

ENGINES = ("analytical", "event")


def simulate(
    scenario: Scenario, *, name: str = "", engine: str = "analytical", ranks: str = "stage"
) -> Result:
    """Simulate one training step of `scenario`.

    Args:
        engine: "analytical" (closed form, for search) or "event" (discrete events:
            schedules, overlap, shared links).
        ranks: event engine only: "stage" (one rank per pipeline stage, any size) or "all"
            (every GPU, small clusters).

    Raises:
        SpecError: an unknown engine or ranks mode.
        InfeasiblePlan: the chip lacks the scenario's precision, or the schedule cannot
            run the plan.
    """
    return simulate_timeline(scenario, name=name, engine=engine, ranks=ranks, spans=False)[0]


def simulate_timeline(
    scenario: Scenario,
    *,
    name: str = "",
    engine: str = "analytical",
    ranks: str = "stage",
    spans: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Result, Timeline | None]:
    """As `simulate`, also returning the event engine's timeline (None for analytical);
    `spans=False` skips recording the per-op spans a trace needs (faster); `progress`
    hears the event engine's tasks (`simulate_events`)."""
    if engine not in ENGINES:
        raise SpecError(f"engine: unknown engine '{engine}' (allowed: {', '.join(ENGINES)})")
    if ranks not in {"stage", "all"}:
        raise SpecError(f"ranks: unknown mode '{ranks}' (allowed: stage, all)")
    plan = resolve(scenario)
    precision = scenario.require_training().precision
    scenario.cluster.chip.peak_flops(precision)  # fail early on an unsupported precision
    program = lower(scenario, plan)
    timeline = None
    if engine == "event":
        timeline = simulate_events(
            program,
            plan,
            scenario.cluster,
            precision,
            ranks="all" if ranks == "all" else "stage",
            record=spans,
            progress=progress,
        )
        step = timeline.step
    else:
        step = estimate_step(program, plan, scenario.cluster, precision)
    memory = estimate_memory(scenario, plan, program)
    result = summarize(scenario, plan, step, memory, name=name, engine=engine)
    sections = assess(
        scenario,
        utilization=result.utilization,
        seconds_per_unit=result.step_time_s,
        tokens_per_unit=result.tokens_per_step,
    )
    result = dataclasses.replace(
        result,
        facility=sections["facility"],
        reliability=sections["reliability"],
        cost=sections["cost"],
        warnings=(*result.warnings, *sections["warnings"]),
    )
    return result, timeline
