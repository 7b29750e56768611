"""The facility, reliability and cost sections a serving result carries (`serve --json` and
the service's /serve)."""

from __future__ import annotations

from typing import Any


def serving_facility(scenario: Any, result: dict[str, Any]) -> dict[str, Any] | None:
    """Facility, reliability and cost of the deployment (`superscale.facility.assess`).

    One second of serving is the unit of work: its busy share is the engines' measured
    utilization and its tokens the output tokens served per second.
    """
    from superscale import facility

    assess = getattr(facility, "assess", None)
    if assess is None or not result.get("fits") or "throughput" not in result:
        return None
    out: dict[str, Any] = assess(
        scenario,
        utilization=result["utilization"],
        seconds_per_unit=1.0,
        tokens_per_unit=result["throughput"]["output_tokens_per_s"],
        gpus=result["gpus"],
        kind="serving",
    )
    return out
