"""One workload on several clusters: the scenario with its cluster replaced, simulated each.

A cluster is named as a catalog cluster (`metax-cube-1k`), as `SYSTEM:COUNT`
(`metax-c550-8x:128`: 128 of that catalog system on its own NICs), or as a bare catalog
system (`metax-cube-128`: one of it). The scenario's plan is
kept; where it does not divide a cluster or cannot run there, that cluster's entry carries
the error instead of a result, so one bad column does not hide the others. Each result is
exactly what `simulate` returns for the scenario with that cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from superscale.errors import InfeasiblePlan, SpecError
from superscale.hardware.catalog import clusters, systems
from superscale.report.result import Result
from superscale.scenario import Scenario
from superscale.spec import spec_error_from

MAX_CLUSTERS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One column of a comparison: a result, or why this cluster cannot run the plan."""

    cluster: str
    result: Result | None = None
    error: str | None = None


def parse_clusters(text: str) -> list[str]:
    """Split 'a,b:128' into names, checking each names a catalog cluster or system:count."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise SpecError("--clusters: give at least one cluster, e.g. metax-cube-1k,metax-c500-1k")
    if len(names) > MAX_CLUSTERS:
        raise SpecError(f"--clusters: at most {MAX_CLUSTERS} clusters, got {len(names)}")
    for name in names:
        cluster_value(name)
    return names


def cluster_value(name: str) -> Any:
    """The `cluster:` value for a name: a catalog name, or {system, count} for SYSTEM:COUNT.

    Raises:
        SpecError: unknown catalog name or a count that is not a positive integer.
    """
    if ":" not in name:
        if name not in clusters() and name in systems():
            return {"name": name, "system": name, "count": 1}  # one server or super-node
        clusters().get(name)  # SpecError with a suggestion if unknown
        return name
    system, _, count = name.partition(":")
    systems().get(system)
    if not count.isdigit() or int(count) <= 0:
        raise SpecError(f"--clusters: '{name}': the count after ':' must be a positive integer")
    return {"name": name, "system": system, "count": int(count)}


def with_cluster(scenario: Scenario, name: str, *, tokens: float | None = None) -> Scenario:
    """The scenario with its cluster replaced (and training.tokens, if given), revalidated.

    Raises:
        SpecError: the plan does not divide the new cluster (or another check fails).
    """
    training = scenario.training
    if tokens is not None and training is not None:
        training = training.model_copy(update={"tokens": tokens})
    data = {
        "model": scenario.model,
        "cluster": cluster_value(name),
        "training": training,
        "serving": scenario.serving,
        "parallel": scenario.parallel,
        "facility": scenario.facility,
    }
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc) from None


def compare(
    scenario: Scenario, names: list[str], *, name: str = "", tokens: float | None = None
) -> list[Entry]:
    """Simulate the scenario's training step on each named cluster.

    Args:
        scenario: the workload (model, training, plan, facility).
        names: catalog clusters or SYSTEM:COUNT.
        name: the run's name in each result (as `simulate` names it).
        tokens: tokens to train, overriding training.tokens.

    Returns:
        One `Entry` per name, in order, with a result or the error that stopped it.
    """
    from superscale.pipeline import simulate

    scenario.require_training()
    if tokens is not None and not tokens > 0:
        raise SpecError(f"--tokens must be > 0, got {tokens}")
    entries = []
    for cluster in names:
        try:
            result = simulate(with_cluster(scenario, cluster, tokens=tokens), name=name)
        except (SpecError, InfeasiblePlan) as exc:
            entries.append(Entry(cluster=cluster, error=str(exc)))
        else:
            entries.append(Entry(cluster=cluster, result=result))
    return entries


def entry_json(entry: Entry, first_floor: float | None) -> dict[str, Any]:
    """One column as `compare --json` prints it, its floor area as a share of the first
    column's."""
    if entry.result is None:
        return {"cluster": entry.cluster, "error": entry.error, "result": None}
    data = entry.result.to_json()
    floor = data["facility"]["space"]["floor_m2"]
    ratio = floor / first_floor if first_floor else None
    return {"cluster": entry.cluster, "error": None, "floor_ratio": ratio, "result": data}
