"""Parallel plans: derived sizes and group placement (which plans can run: `scenario.rules`)."""

from superscale.parallelism.plan import GroupPlacement, Plan, place_group, resolve

__all__ = ["GroupPlacement", "Plan", "place_group", "resolve"]
