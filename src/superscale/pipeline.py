"""The whole flow for one scenario: spec → plan → program → step time → result."""

from __future__ import annotations

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
    precision = scenario.training.precision
    scenario.cluster.chip.peak_flops(precision)  # fail early on an unsupported precision
    program = lower(scenario, plan)
    step = estimate_step(program, plan, scenario.cluster, precision)
    memory = estimate_memory(scenario, plan, program)
    return summarize(scenario, plan, step, memory, name=name)
