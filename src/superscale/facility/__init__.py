"""Facility: power, cooling, floor space, reliability and cost."""
