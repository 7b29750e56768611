"""The two ways a request can fail: the input is wrong, or the input is valid but cannot run.

`SpecError` carries the dotted path of the offending field so that every entry point (CLI,
service, loaders) can print one clear line; `InfeasiblePlan` is a valid plan that does not fit
or cannot execute (e.g. a precision the chip lacks).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(ValueError):
    """Bad user input: names the field path, the bad value and what is allowed."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InfeasiblePlan(ValueError):
    """A valid request that cannot be carried out as asked (does not fit, unsupported)."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return " did you mean 'x'?" for the nearest choice, or an empty string."""
    options = list(choices)
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    if not match:
        lowered = name.lower()
        match = [c for c in options if lowered and (lowered in c or c in lowered)][:1]
    return f" did you mean '{match[0]}'?" if match else ""


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """ "unknown system 'h100'; did you mean 'dgx-h100'? (known: ...)"."""
    options = sorted(choices)
    hint = suggest(name, options)
    listing = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    message = f"unknown {kind} '{name}'"
    if hint:
        message += f";{hint}"
    return f"{message} (known: {listing})"
