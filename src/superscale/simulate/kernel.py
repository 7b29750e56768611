"""A small discrete-event kernel: processes as generators, events, and fluid links.

Processes are generators that yield events (a timeout, another event, or several); the
`Environment` owns the clock, the event heap and a sequence counter, so runs are
deterministic (SimPy's design, in a few dozen lines). A `FluidLink` shares its capacity
max-min fairly among the transfers active on it: with k transfers each progresses at
1/k of the link rate, and every start or finish re-plans the next completion (the
flow-level model of network simulators such as SimGrid, Casanova et al. 2014).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

ProcessGen = Generator["Event", Any, Any]


class Event:
    """Something that happens once; callbacks run when it is triggered."""

    __slots__ = ("_callbacks", "env", "triggered", "value")

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.triggered = False
        self.value: Any = None
        self._callbacks: list[Callable[[Event], None]] = []

    def succeed(self, value: Any = None) -> Event:
        if self.triggered:
            raise RuntimeError("event already triggered")
        self.triggered = True
        self.value = value
        self.env._schedule(0.0, self._fire)
        return self

    def _trigger(self) -> None:
        """Trigger and run callbacks now (for timeouts: saves a second trip through the heap)."""
        self.triggered = True
        self._fire()

    def _fire(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def on(self, callback: Callable[[Event], None]) -> None:
        if self.triggered and not self._callbacks:
            self.env._schedule(0.0, lambda: callback(self))
        else:
            self._callbacks.append(callback)


class Environment:
    """Clock, event heap and process scheduler of one simulation."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, action))

    def event(self) -> Event:
        return Event(self)

    def timeout(self, delay: float) -> Event:
        ev = Event(self)
        self._schedule(max(0.0, delay), ev._trigger)
        return ev

    def all_of(self, events: Iterable[Event]) -> Event:
        pending = [e for e in events]
        done = Event(self)
        remaining = [sum(1 for e in pending if not e.triggered)]
        if remaining[0] == 0:
            return done.succeed()

        def one(_: Event) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.succeed()

        for e in pending:
            if not e.triggered:
                e.on(one)
        return done

    def any_of(self, events: Iterable[Event]) -> Event:
        """Fires when the first of `events` fires."""
        done = Event(self)

        def first(_: Event) -> None:
            if not done.triggered:
                done.succeed()

        for e in events:
            e.on(first)
        return done

    def process(self, gen: ProcessGen) -> Event:
        """Run a generator as a process; the returned event fires when it ends."""
        finished = Event(self)

        def resume(ev: Event) -> None:
            step(ev.value)

        def step(value: Any = None) -> None:
            try:
                target = gen.send(value)
            except StopIteration as stop:
                finished.succeed(stop.value)
                return
            target.on(resume)

        self._schedule(0.0, step)
        return finished

    def run(self) -> float:
        """Run until no event is left; returns the final clock."""
        while self._heap:
            time, _, action = heapq.heappop(self._heap)
            self.now = time
            action()
        return self.now


@dataclass(eq=False)
class _Transfer:
    remaining: float  # seconds of exclusive use still needed
    done: Event
    label: str


@dataclass(eq=False)
class FluidLink:
    """A link shared max-min fairly: k active transfers each get 1/k of it."""

    env: Environment
    name: str
    active: list[_Transfer] = field(default_factory=list)
    _last: float = 0.0
    _version: int = 0
    busy_s: float = 0.0

    def transfer(self, work_s: float, label: str = "") -> Event:
        """Move `work_s` seconds' worth of exclusive link time; fires when done."""
        done = self.env.event()
        if work_s <= 0:
            return done.succeed()
        self._advance()
        self.active.append(_Transfer(work_s, done, label))
        self._plan()
        return done

    def _advance(self) -> None:
        now = self.env.now
        if self.active and now > self._last:
            share = (now - self._last) / len(self.active)
            for t in self.active:
                t.remaining -= share
            self.busy_s += now - self._last
        self._last = now

    def _plan(self) -> None:
        self._version += 1
        if not self.active:
            return
        version = self._version
        nxt = min(t.remaining for t in self.active)
        self.env._schedule(max(0.0, nxt * len(self.active)), lambda: self._complete(version))

    def _complete(self, version: int) -> None:
        if version != self._version:
            return  # superseded by a later start or finish
        self._advance()
        least = min(self.active, key=lambda t: t.remaining)
        finished = [t for t in self.active if t is least or t.remaining <= 1e-12]
        self.active = [t for t in self.active if t not in finished]
        for t in finished:
            t.done.succeed()
        self._plan()
