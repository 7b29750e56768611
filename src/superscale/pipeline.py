"""The whole flow for one scenario: spec → plan → program → step time → result.

The result carries facility, reliability and cost sections (`superscale.facility.assess`)
at the step's utilization and throughput.
"""

from __future__ import annotations

import dataclasses

from superscale.facility import assess
from superscale.parallelism.plan import resolve
from superscale.report.result import Result, summarize
from superscale.scenario import Scenario
from superscale.simulate.analytical import estimate_step
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory


def simulate(scenario: Scenario, *, name: str = "") -> Result:
    """Simulate one training step of `scenario` with the analytical engine.

    Raises:
        InfeasiblePlan: the chip lacks the scenario's precision.
    """
    plan = resolve(scenario)
    precision = scenario.require_training().precision
    scenario.cluster.chip.peak_flops(precision)  # fail early on an unsupported precision
    program = lower(scenario, plan)
    step = estimate_step(program, plan, scenario.cluster, precision)
    memory = estimate_memory(scenario, plan, program)
    result = summarize(scenario, plan, step, memory, name=name)
    sections = assess(
        scenario,
        utilization=result.utilization,
        seconds_per_unit=result.step_time_s,
        tokens_per_unit=result.tokens_per_step,
    )
    return dataclasses.replace(
        result,
        facility=sections["facility"],
        reliability=sections["reliability"],
        cost=sections["cost"],
        warnings=(*result.warnings, *sections["warnings"]),
    )
