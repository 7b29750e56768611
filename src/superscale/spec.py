"""Base class for every user-facing spec, and the translation of validation errors.

Specs are frozen pydantic v2 models that forbid unknown keys. An unknown key is reported with
the nearest valid key ("unknown key 'tpp'; did you mean 'tp'?"), and a pydantic
ValidationError becomes a `SpecError` naming the dotted field path, the bad value and, for
choices, the allowed values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from superscale.errors import SpecError, suggest


class Spec(BaseModel):
    """Frozen, strict base for specs: unknown keys are errors that suggest the nearest key."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = set(cls.model_fields)
            allowed |= {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if not isinstance(key, str):
                    raise ValueError(f"keys must be strings, got {key!r}")
                if key not in allowed:
                    hint = suggest(key, allowed)
                    listing = ", ".join(sorted(allowed))
                    raise ValueError(
                        f"unknown key '{key}';{hint} (allowed: {listing})"
                        if hint
                        else f"unknown key '{key}' (allowed: {listing})"
                    )
        return data


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def spec_error_from(error: ValidationError, *, prefix: str = "") -> SpecError:
    """Turn pydantic's error list into one SpecError naming the first failing field path."""
    first = error.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
    # Drop pydantic's union-branch tags such as 'str' or 'ModelSpec' from the path.
    loc = [p for p in loc if not (p[:1].isupper() or p in {"str", "int", "float", "dict"})]
    path = ".".join([prefix, *loc] if prefix else loc)
    message = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] not in {"value_error", "assertion_error", "missing"} and "input" in first:
        message = f"{message} (got {_short(first['input'])})"
    more = len(error.errors()) - 1
    if more > 0:
        message += f" [and {more} more problem{'s' if more > 1 else ''}]"
    return SpecError(message, path=path)
