"""Pipeline layouts: how many transformer layers each model chunk holds.

A layout is a list of layer counts, one per model chunk in pipeline order (pp·v chunks:
chunk k lives on rank k mod pp), or Megatron-Core's layout string
(`--pipeline-model-parallel-layout`): chunks separated by `|`, each a sequence of `E`
(embedding), `t` (a transformer layer), `m` (an MTP module) and `L` (the loss), with `*N`
repeating the symbol or parenthesised group before it, e.g. `Et*3|(tttt|)*30|tttL`, the
way Llama 3 405B counts its embedding and loss as layers of the first and last chunks.
Only the `t` count matters to the cost model: the embedding always sits on the first chunk
and the loss on the last. The string is parsed, never evaluated.
"""

from __future__ import annotations

from typing import Any

from superscale.errors import SpecError

MAX_LAYOUT_CHARS = 10_000
MAX_CHUNKS = 4096


def parse_layout(text: str, *, field: str = "parallel.pipeline_layout") -> tuple[int, ...]:
    """Transformer layers per chunk of a Megatron layout string.

    Raises:
        SpecError: a character outside `E t m L | ( ) * digits`, unbalanced parentheses,
            a bad repeat count, or a layout that expands past `MAX_CHUNKS` chunks.
    """
    if len(text) > MAX_LAYOUT_CHARS:
        raise SpecError(f"{field}: layout longer than {MAX_LAYOUT_CHARS} characters")
    expanded = _expand(text.replace(" ", ""), field)
    chunks = expanded.split("|")
    if len(chunks) > MAX_CHUNKS:
        raise SpecError(f"{field}: layout expands to more than {MAX_CHUNKS} chunks")
    return tuple(chunk.count("t") for chunk in chunks)


def _expand(text: str, field: str) -> str:
    """`text` with every `X*N` and `(...)*N` written out (bounded)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "(":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise SpecError(f"{field}: unbalanced '(' in layout '{text}'")
            piece = _expand(text[i + 1 : j - 1], field)
            i = j
        elif c in "EtmL|":
            piece, i = c, i + 1
        else:
            raise SpecError(f"{field}: unexpected '{c}' in layout (allowed: E t m L | ( ) *N)")
        count = 1
        if i < len(text) and text[i] == "*":
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            if j == i + 1 or j - i > 7:
                raise SpecError(f"{field}: '*' needs a repeat count of 1-999999")
            count, i = int(text[i + 1 : j]), j
        if len(piece) * count > 4 * MAX_LAYOUT_CHARS * 10:
            raise SpecError(f"{field}: layout expands too far")
        out.append(piece * count)
    return "".join(out)


def first_last_layout(
    layers: int, pp: int, *, first: int | None, last: int | None, field: str
) -> tuple[int, ...]:
    """Megatron's uneven first/last stages (--decoder-first/last-pipeline-num-layers): the
    rest split evenly over the middle stages."""
    head, tail = first or 0, last or 0
    middle = pp - (first is not None) - (last is not None)
    rest = layers - head - tail
    if rest < 0 or (middle == 0 and rest) or (middle and rest % middle):
        raise SpecError(
            f"{field}: {layers} layers less first {head} and last {tail} do not split evenly "
            f"over the other {middle} stages"
        )
    each = rest // middle if middle else 0
    counts = [each] * pp
    if first is not None:
        counts[0] = head
    if last is not None:
        counts[-1] = tail
    return tuple(counts)


def resolve_layout(
    layers: int,
    *,
    pp: int,
    virtual_stages: int,
    layout: tuple[int, ...] | str | None,
    first: int | None,
    last: int | None,
) -> tuple[int, ...] | None:
    """The plan's layers per chunk, or None for Megatron's even split.

    Raises:
        SpecError: a layout whose chunk count or layer total does not match the plan.
    """
    chunks = pp * virtual_stages
    if layout is not None and (first is not None or last is not None):
        raise SpecError("parallel: give pipeline_layout or first/last_stage_layers, not both")
    if first is not None or last is not None:
        if virtual_stages > 1:
            raise SpecError(
                "parallel.first_stage_layers/last_stage_layers: with virtual stages give "
                "pipeline_layout (one count per chunk)"
            )
        return first_last_layout(layers, pp, first=first, last=last, field="parallel")
    if layout is None:
        return None
    counts = parse_layout(layout) if isinstance(layout, str) else tuple(layout)
    if len(counts) != chunks:
        raise SpecError(
            f"parallel.pipeline_layout: {len(counts)} chunks, but pp·virtual_stages = {chunks}"
        )
    if sum(counts) != layers:
        raise SpecError(
            f"parallel.pipeline_layout: {sum(counts)} layers, but the model has {layers}"
        )
    return counts


def plan_layout(parallel: Any, layers: int) -> tuple[int, ...] | None:
    """`resolve_layout` for a scenario's `parallel` section (its layout fields)."""
    return resolve_layout(
        layers,
        pp=parallel.pp,
        virtual_stages=parallel.virtual_stages,
        layout=parallel.pipeline_layout,
        first=parallel.first_stage_layers,
        last=parallel.last_stage_layers,
    )
