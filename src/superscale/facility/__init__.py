"""Facility: power, cooling, floor space, reliability and cost of a cluster at work.

`assess(scenario, utilization=..., seconds_per_unit=..., tokens_per_unit=...)` returns the
facility, reliability and cost sections that `simulate` and `serve` report; the models live
in fabric.py, power.py, space.py, reliability.py and cost.py, and their figures in
catalog/*.yaml (each with its source).
"""

from superscale.facility.assessment import assess

__all__ = ["assess"]
