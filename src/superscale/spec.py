"""Base class for every user-facing spec, and the translation of validation errors.

Specs are frozen pydantic v2 models that forbid unknown keys. An unknown key is reported with
the nearest valid key ("unknown key 'tpp'; did you mean 'tp'?"), and a pydantic
ValidationError becomes a `SpecError` naming the dotted field path, the bad value and, for
choices, the allowed values.

Numbers are strict in the two ways YAML makes easy to get wrong: a boolean is never a number
(`tp: true` is an error, not tp=1, although Python's bool is an int), and no float field
takes an infinity or NaN (`.inf`, `.nan`). Physical upper bounds (`le=`) sit on the fields
themselves, with the constants below shared across specs.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from superscale.errors import SpecError, suggest

# Shared physical bounds (upper, inclusive): beyond them a value is a typo or an attack,
# not a machine. The largest training clusters built hold ~10^5 GPUs; 2^20 leaves room.
MAX_GPUS = 2**20
MAX_COUNT = 2**20  # systems, ranks of a parallel group, instances
MAX_LAYERS = 10_000
MAX_WIDTH = 2**20  # hidden, FFN, head sizes, in elements
MAX_VOCAB = 2**24
MAX_SEQ_LEN = 2**24  # tokens per sequence (16M; the longest contexts are ~10M)
MAX_BATCH = 2**24  # sequences per step
MAX_TOKENS = 1e17  # tokens of a whole run (the largest are ~4e13)
MAX_PEAK_TFLOPS = 1e6  # per chip, any precision (a B200 is ~10^4 at fp4)
MAX_REQUESTS = 10_000_000
MAX_SECONDS = 1e9  # any duration or arrival time (~30 years)


def _numeric(annotation: Any) -> bool:
    """Whether a field annotation admits an int or a float but not a bool."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = set(args)
        return bool(kinds & {int, float}) and bool not in kinds
    if origin is typing.Literal:
        return all(isinstance(a, int) and not isinstance(a, bool) for a in args)
    if origin is typing.Annotated:
        return _numeric(args[0])
    return annotation in (int, float)


class Spec(BaseModel):
    """Frozen, strict base for specs: unknown keys are errors that suggest the nearest key;
    numeric fields refuse booleans, float fields refuse infinities and NaN."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )
    _numeric_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        names = {n for n, f in cls.model_fields.items() if _numeric(f.annotation)}
        names |= {f.alias for n, f in cls.model_fields.items() if n in names and f.alias}
        cls._numeric_fields = frozenset(names)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in cls._numeric_fields.intersection(data):
                if isinstance(data[key], bool):
                    raise ValueError(
                        f"{key}: a number is required, got {str(data[key]).lower()} (a "
                        "boolean is not a number)"
                    )
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


_BOOLEAN = re.compile(r"^([A-Za-z_]\w*): (a number is required, got (?:true|false).*)$")


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
    boolean = _BOOLEAN.match(message)  # raised by a model for one of its fields: name it
    if boolean:
        path = f"{path}.{boolean.group(1)}" if path else boolean.group(1)
        message = boolean.group(2)
    if first["type"] not in {"value_error", "assertion_error", "missing"} and "input" in first:
        message = f"{message} (got {_short(first['input'])})"
    more = len(error.errors()) - 1
    if more > 0:
        message += f" [and {more} more problem{'s' if more > 1 else ''}]"
    return SpecError(message, path=path)
