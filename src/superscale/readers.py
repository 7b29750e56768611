"""Bounded readers: every file superscale reads from a user goes through here.

One policy for scenarios, `hf_config` JSON, serving traces, calibration profiles and the
results store:

- only regular files are read; a directory, device (`/dev/zero`), FIFO or socket is refused
  by name before it is opened for reading, and the file is opened non-blocking and checked
  again after opening (a FIFO swapped in between never blocks);
- at most `limit_bytes` are read (limit + 1, to tell "at the cap" from "over it"); the size
  a stat reports is not trusted (it is 0 for devices and for files that grow);
- YAML is composed by `yaml.SafeLoader` with a bounded nesting depth, a bounded number of
  nodes counting every alias expansion (alias bombs, recursive anchors), refuses duplicate
  keys (YAML says a mapping's keys are unique; PyYAML keeps the last silently) and integers
  of more digits than any physical quantity has, and turns every YAML error (a
  `!!python/object` tag included) into one `SpecError` line with its position;
- JSON gets the same depth, integer and duplicate-key bounds and refuses NaN/Infinity.

The depth is checked while composing (PyYAML's composer recurses once per level, so a
1,000-deep list would otherwise end in a RecursionError) and on the raw text for JSON
(whose C scanner recurses too); the node count is then an iterative walk.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from superscale.errors import SpecError

MIB = 1024 * 1024
MAX_SCENARIO_BYTES = 2 * MIB
MAX_JSON_BYTES = 4 * MIB
MAX_TRACE_BYTES = 64 * MIB
MAX_PROFILE_BYTES = 4 * MIB
# Deeper than any scenario or config needs (a scenario nests about 5 levels).
MAX_DEPTH = 32
# Nodes of a document with every alias expanded: a scenario has a few hundred.
MAX_NODES = 20_000
MAX_ALIASES = 64
# 2^63 has 19 digits; no count, size or rate a scenario holds needs more.
MAX_INT_DIGITS = 20

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """Structure limits of one parsed document (YAML or JSON)."""

    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_aliases: int = MAX_ALIASES
    max_int_digits: int = MAX_INT_DIGITS


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | Path, *, what: str) -> os.stat_result:
    """The stat of `path` if it is a regular file (symlinks followed).

    Raises:
        SpecError: missing, unreadable, or a directory, device, FIFO or socket.
    """
    p = Path(path)
    try:
        info = os.stat(p)
    except OSError as exc:
        raise SpecError(f"cannot read {what} {p}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{what} {p} is {_kind(info.st_mode)}; only regular files are read")
    return info


def read_bytes_bounded(path: str | Path, *, limit_bytes: int, what: str) -> bytes:
    """At most `limit_bytes` of a regular file.

    Args:
        path: the file.
        limit_bytes: the cap; a longer file is refused.
        what: what the file is, for messages ("scenario", "trace", "hf_config").

    Raises:
        SpecError: not a regular file, unreadable, or longer than `limit_bytes`.
    """
    p = Path(path)
    info = check_regular(p, what=what)
    if info.st_size > limit_bytes:
        raise SpecError(_too_big(p, what, info.st_size, limit_bytes))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise SpecError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # replaced between the stat and the open
            raise SpecError(f"{what} {p} is {_kind(opened.st_mode)}; only regular files are read")
        chunks: list[bytes] = []
        left = limit_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, MIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise SpecError(f"cannot read {what} {p}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit_bytes:
        raise SpecError(_too_big(p, what, len(data), limit_bytes, grew=True))
    return data


def _too_big(path: Path, what: str, size: int, limit: int, *, grew: bool = False) -> str:
    shown = f"more than {_mb(limit)}" if grew else _mb(size)
    return f"{what} {path} is {shown}; {what} files are limited to {_mb(limit)}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def read_text_bounded(path: str | Path, *, limit_bytes: int, what: str) -> str:
    """`read_bytes_bounded` decoded as UTF-8 (a byte-order mark is dropped).

    Raises:
        SpecError: as `read_bytes_bounded`, or the bytes are not UTF-8.
    """
    data = read_bytes_bounded(path, limit_bytes=limit_bytes, what=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


# ---------------------------------------------------------------------------- YAML


try:  # libyaml parses events in C; composing stays in Python, where the bounds are
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml.parser import Parser as _Parser  # type: ignore[assignment]


class _BoundedLoader(_Parser, Composer, SafeConstructor, Resolver):
    """A safe loader whose composer stops at a depth, a node count and an alias count."""

    bounds: Bounds = Bounds()

    def __init__(self, stream: str) -> None:
        if _Parser.__module__ == "yaml._yaml":
            _Parser.__init__(self, stream)
        else:  # pragma: no cover - the pure-Python parser reads through Reader and Scanner
            yaml.reader.Reader.__init__(self, stream)  # type: ignore[arg-type]
            yaml.scanner.Scanner.__init__(self)  # type: ignore[arg-type]
            _Parser.__init__(self)  # type: ignore[call-arg]
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0
        self._aliases = 0

    get_single_node = Composer.get_single_node
    compose_document = Composer.compose_document

    def _mark(self) -> Any:
        event = self.peek_event()
        return None if event is None else event.start_mark

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.bounds.max_aliases:
                raise _Refused(
                    f"more than {self.bounds.max_aliases} YAML aliases; refusing a possible "
                    "alias bomb",
                    self._mark(),
                )
            return Composer.compose_node(self, parent, index)
        self._depth += 1
        self._nodes += 1
        if self._depth > self.bounds.max_depth:
            raise _Refused(f"nested deeper than {self.bounds.max_depth} levels", self._mark())
        if self._nodes > self.bounds.max_nodes:
            raise _Refused(_too_many(self.bounds), self._mark())
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > self.bounds.max_int_digits:
            raise _Refused(
                f"an integer of {digits} digits (at most {self.bounds.max_int_digits})",
                node.start_mark,
            )
        return int(super().construct_yaml_int(node))


def _too_many(bounds: Bounds) -> str:
    return (
        f"more than {bounds.max_nodes:,} values (aliases expanded); refusing an oversized document"
    )


_BoundedLoader.add_constructor(_INT_TAG, _BoundedLoader.construct_yaml_int)  # type: ignore[type-var]


class _Refused(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _check_tree(root: Node, bounds: Bounds) -> None:
    """Duplicate keys and the expanded node count, walking the node graph iteratively.

    Aliases make the tree a graph (and a recursive anchor a cycle); each node's expanded
    size is computed once, post-order, so the walk is linear in the nodes written.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, done = stack.pop()
        ident = id(node)
        if done:
            on_path.discard(ident)
            total = 1 + sum(size[id(c)] for _, c in _children(node, path))
            if total > bounds.max_nodes:
                raise _Refused(_too_many(bounds), node.start_mark)
            size[ident] = total
            continue
        if ident in size:
            continue
        if ident in on_path:
            raise _Refused("a recursive alias (a node that contains itself)", node.start_mark)
        on_path.add(ident)
        if isinstance(node, MappingNode):
            _check_duplicates(node, path)
        stack.append((node, path, True))
        stack.extend((c, p, False) for p, c in _children(node, path) if id(c) not in size)


def _children(node: Node, path: str) -> list[tuple[str, Node]]:
    def join(part: str) -> str:
        return f"{path}.{part}" if path else part

    if isinstance(node, MappingNode):
        out: list[tuple[str, Node]] = []
        for key, value in node.value:
            name = join(str(key.value) if isinstance(key, ScalarNode) else "?")
            out += [(name, key), (name, value)]
        return out
    if isinstance(node, SequenceNode):
        return [(join(str(i)), child) for i, child in enumerate(node.value)]
    return []


def _check_duplicates(node: MappingNode, path: str) -> None:
    seen: dict[tuple[str, str], Any] = {}
    for key, _ in node.value:
        if key.tag == _MERGE_TAG or not isinstance(key, ScalarNode):
            continue
        ident = (key.tag, str(key.value))
        if ident in seen:
            dotted = f"{path}.{key.value}" if path else str(key.value)
            raise _Refused(
                f"duplicate key '{dotted}'{_where(key.start_mark)} (first at line "
                f"{seen[ident].line + 1}); each key may appear once"
            )
        seen[ident] = key.start_mark


def load_yaml_text(text: str, *, origin: str, bounds: Bounds = Bounds()) -> Any:
    """Parse one YAML document with `bounds`; None for an empty document.

    Raises:
        SpecError: "<origin>: <problem> at line L, column C" for malformed YAML, a
            non-safe tag, a duplicate key, or a document past `bounds`.
    """
    loader_class = type("Loader", (_BoundedLoader,), {"bounds": bounds})
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node, bounds)
        return loader.construct_document(node)
    except _Refused as exc:
        raise SpecError(f"{origin}: {exc.message}{_where(exc.mark)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "could not determine" in str(
            problem
        ):
            problem = f"{problem} (only plain YAML is read: no !!python or custom tags)"
        raise SpecError(f"{origin}: malformed YAML{_where(mark)}: {problem}") from None
    except (ValueError, OverflowError) as exc:  # a scalar a constructor cannot convert
        raise SpecError(f"{origin}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, *, limit_bytes: int, what: str, bounds: Bounds = Bounds()) -> Any:
    """`read_text_bounded` then `load_yaml_text`; the origin in messages is the path."""
    text = read_text_bounded(path, limit_bytes=limit_bytes, what=what)
    return load_yaml_text(text, origin=str(path), bounds=bounds)


# ---------------------------------------------------------------------------- JSON

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth(text: str, limit: int) -> int | None:
    """The offset where nesting first passes `limit` (strings skipped), or None."""
    depth = 0
    stripped = _JSON_STRING.sub(lambda m: " " * len(m.group(0)), text)
    for match in _JSON_BRACKET.finditer(stripped):
        if match.group(0) in "[{":
            depth += 1
            if depth > limit:
                return match.start()
        else:
            depth -= 1
    return None


def load_json_text(text: str, *, origin: str, bounds: Bounds = Bounds()) -> Any:
    """Parse JSON with `bounds`: depth, integer digits, no duplicate keys, no NaN/Infinity.

    Raises:
        SpecError: "<origin>: <problem> (line L)".
    """
    deep = _json_depth(text, bounds.max_depth)
    if deep is not None:
        line = text.count("\n", 0, deep) + 1
        raise SpecError(f"{origin}: nested deeper than {bounds.max_depth} levels (line {line})")

    def parse_int(value: str) -> int:
        if len(value.lstrip("-")) > bounds.max_int_digits:
            raise _Refused(
                f"an integer of {len(value.lstrip('-'))} digits (at most {bounds.max_int_digits})"
            )
        return int(value)

    def parse_constant(value: str) -> Any:
        raise _Refused(f"{value} is not a finite number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _Refused(f"duplicate key '{key}'; each key may appear once")
            out[key] = value
        return out

    try:
        return json.loads(
            text, parse_int=parse_int, parse_constant=parse_constant, object_pairs_hook=pairs
        )
    except _Refused as exc:
        raise SpecError(f"{origin}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{origin} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise SpecError(f"{origin}: nested too deeply") from None


def read_json(
    path: str | Path, *, limit_bytes: int = MAX_JSON_BYTES, what: str, bounds: Bounds = Bounds()
) -> Any:
    """`read_text_bounded` then `load_json_text`."""
    text = read_text_bounded(path, limit_bytes=limit_bytes, what=what)
    return load_json_text(text, origin=f"{what} {path}", bounds=bounds)
