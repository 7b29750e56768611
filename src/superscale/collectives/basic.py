"""Compatibility shim: collective times now come from the topology-aware tuner."""

from superscale.collectives.tuner import collective_time_s

__all__ = ["collective_time_s"]
