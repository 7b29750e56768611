"""Parallel plans: derived sizes, validity and placement of groups on the topology."""

from superscale.parallelism.plan import GroupPlacement, Plan, place_group, resolve

__all__ = ["GroupPlacement", "Plan", "place_group", "resolve"]
