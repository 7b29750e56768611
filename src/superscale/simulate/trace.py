"""Chrome trace-event export of an event-engine timeline (opens in Perfetto and
chrome://tracing).

One process per simulated rank ("stage s"), one thread per stream (compute, and a
communication stream per link); overlapping transfers on one link go to numbered
sub-tracks so slices on a track never overlap. Slices carry the op's FLOPs, bytes,
micro-batch and chunk; pipeline sends are flow arrows from the send to the task that
waited for it. Format: Google's Trace Event Format (complete "X" events, "s"/"f" flow
events, "M" metadata), timestamps in microseconds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from superscale.simulate.event import Span, Timeline


def chrome_trace(timeline: Timeline, *, title: str = "superscale") -> dict[str, Any]:
    """The trace as a JSON-serializable dict."""
    events: list[dict[str, Any]] = []
    tracks: dict[tuple[int, str], list[float]] = defaultdict(list)  # sub-track end times
    tids: dict[tuple[int, str], int] = {}
    ranks: dict[int, int] = {}
    by_track: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    flows: list[dict[str, Any]] = []
    for span in sorted(timeline.spans, key=lambda s: (s.rank, s.stream, s.start_s, s.end_s)):
        ranks[span.rank] = span.stage
        lane = _sub_track(tracks[(span.rank, span.stream)], span)
        name = span.stream if lane == 0 else f"{span.stream} #{lane + 1}"
        tid = tids.setdefault((span.rank, name), len(tids) + 1)
        ts, dur = span.start_s * 1e6, (span.end_s - span.start_s) * 1e6
        slice_ = {
            "ph": "X",
            "name": span.name,
            "cat": span.task,
            "pid": span.rank,
            "tid": tid,
            "ts": ts,
            "dur": dur,
            "args": {
                "micro_batch": span.micro_batch,
                "chunk": span.chunk,
                "flops": span.flops,
                "bytes": span.bytes,
            },
        }
        by_track[(span.rank, tid)].append(slice_)
        if span.flow_out is not None:
            flows.append(
                {
                    "ph": "s",
                    "name": "pipeline send",
                    "cat": "pp",
                    "id": span.flow_out,
                    "pid": span.rank,
                    "tid": tid,
                    "ts": ts,
                }
            )
        if span.flow_in is not None:
            flows.append(
                {
                    "ph": "f",
                    "bp": "e",
                    "name": "pipeline send",
                    "cat": "pp",
                    "id": span.flow_in,
                    "pid": span.rank,
                    "tid": tid,
                    "ts": ts,
                }
            )
    for rank, stage in sorted(ranks.items()):
        label = f"stage {stage}" if timeline.mode == "stage" else f"stage {stage} · rank {rank}"
        events.append({"ph": "M", "name": "process_name", "pid": rank, "args": {"name": label}})
        events.append(
            {"ph": "M", "name": "process_sort_index", "pid": rank, "args": {"sort_index": rank}}
        )
    for (rank, name), tid in tids.items():
        events.append(
            {"ph": "M", "name": "thread_name", "pid": rank, "tid": tid, "args": {"name": name}}
        )
    for track in by_track.values():
        events.extend(sorted(track, key=lambda e: e["ts"]))
    events.extend(flows)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "title": title,
            "step_time_s": timeline.step.step_time_s,
            "ranks": timeline.ranks,
            "mode": timeline.mode,
        },
    }


def _sub_track(ends: list[float], span: Span) -> int:
    """First sub-track free at the span's start (interval partitioning)."""
    for i, end in enumerate(ends):
        if end <= span.start_s + 1e-12:
            ends[i] = span.end_s
            return i
    ends.append(span.end_s)
    return len(ends) - 1
