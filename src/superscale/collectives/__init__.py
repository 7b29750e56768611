"""Collective communication: time of a collective on a parallel group's placement."""
