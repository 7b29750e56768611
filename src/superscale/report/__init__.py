"""What the user sees: the result of a run as JSON, rich tables and terminal bars."""

from superscale.report.result import Result, summarize

__all__ = ["Result", "summarize"]
