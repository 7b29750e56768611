"""A training scenario's resolved plan as `superscale check --json` prints it (and the
service's `placement`), and the scale-out network in the scenario's words."""

from __future__ import annotations

import dataclasses
from typing import Any

from superscale.hardware.profile import efficiency_source
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import Plan, recipe_words
from superscale.scenario import Scenario


def check_json(scenario: Scenario, plan: Plan) -> dict[str, Any]:
    """What `check --json` prints: the model, cluster, workload, plan and where its groups
    land."""
    m, cl, t = scenario.model, scenario.cluster, scenario.require_training()
    return {
        "gpus": plan.gpus,
        "dp": plan.dp,
        "micro_batches": plan.micro_batches,
        "model": {
            "name": m.name,
            "params": m.params,
            "active_params": m.active_params,
            "params_b": round(m.params / 1e9, 3),
            "active_params_b": round(m.active_params / 1e9, 3),
        },
        "cluster": {
            "name": cl.name,
            "system": cl.system.name,
            "count": cl.count,
            "gpus": cl.gpus,
            "chip": cl.chip.name,
            "network": cl.nic.name,
            "topology": cl.scale_out.topology,
            "oversubscription": cl.scale_out.oversubscription,
            "planes": cl.scale_out.planes,
            "network_shape": network_words(cl),
            "profile": cl.profile,
            "efficiency": efficiency_source(cl.chip),
        },
        "training": t.model_dump(mode="json"),
        # Every scalar field of the plan, so new plan fields appear without a change here.
        "parallel": {
            f.name: getattr(plan, f.name)
            for f in dataclasses.fields(plan)
            if f.name not in {"groups", "warnings"}
        },
        "groups": {
            kind: {
                "size": g.size,
                "stride": g.stride,
                "level": g.level,
                "link": g.link.name,
                "where": g.describe(cl),
            }
            for kind, g in plan.groups.items()
        },
        "warnings": list(plan.warnings),
        "recipe": recipe_words(scenario, plan),
    }


def network_words(cl: Cluster) -> str:
    """The scale-out topology with the figures that shape it, in the scenario's words."""
    so = cl.scale_out
    words: list[str] = [so.topology]
    if so.topology == "dragonfly":
        links = so.global_links_per_group or "one per NIC"
        words.append(f"groups of {so.dragonfly_group_systems} systems, global links {links}")
    elif so.topology == "torus" and so.torus_dims is not None:
        dims = "×".join(str(d) for d in so.torus_dims)
        rate = f", {so.torus_link_gb_per_s:g} GB/s links" if so.torus_link_gb_per_s else ""
        words[0] = f"torus {dims}{rate}"
    else:
        if so.oversubscription != 1.0:
            words.append(f"{so.oversubscription:g}:1 at the leaves")
        if so.planes > 1:
            words.append(f"{so.planes} planes")
    return ", ".join(words)
