"""The methods table of a run that ranks several methods on the same held-out pairs (dcas: the full
model, its ablation rows and the baselines): one row per method, each metric as its mean with the
bootstrap 95% CI over users, and the paired sign-flip test's p-value of each method against the
reference (the full model) — the numbers the run stored in metrics.json under test.methods.

    just compare dataset=demo head=dcas        # after the backbones table, one such table per run
"""
from __future__ import annotations

import json
from typing import Any

from lake import catalog

METRICS = (("ndcg@20", "NDCG@20"), ("recall@20", "R@20"), ("mrr", "MRR"), ("hit@10", "HR@10"))
PROBES = (("za_leakage_by_method", "za probe"), ("za_source_leakage_by_method", "za src probe"))


def run_metrics(run_id: str) -> dict[str, Any]:
    found = catalog.connect().execute("SELECT metrics FROM runs WHERE run_id = $r", {"r": run_id}).fetchone()
    return json.loads(found[0]) if found and found[0] else {}


def table(test: dict[str, Any], reference: str = "dcas") -> tuple[list[str], list[list[str]]]:
    """Header and cells of methods × metrics ('mean [lo, hi]'), then one p column per metric
    (p vs the reference; '–' on its own row), then the probes the run measured per method."""
    methods = test.get("methods") or {}
    metrics = [(key, label) for key, label in METRICS if any(key in m for m in methods.values())]
    probes = [(key, label) for key, label in PROBES if test.get(key)]
    header = ["method", *(label for _, label in metrics), *(f"p {label}" for _, label in metrics),
              *(label for _, label in probes)]
    cells = []
    for name, values in methods.items():
        row = [name]
        for key, _ in metrics:
            entry = values.get(key)
            row.append("–" if entry is None else f"{entry['mean']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]")
        for key, _ in metrics:
            p = (values.get(key) or {}).get("p_vs_dcas")
            row.append("–" if name == reference or p is None else f"{p:.2g}")
        for key, _ in probes:
            probe = test[key].get(name)
            row.append("–" if probe is None else f"{probe:.3f}")
        cells.append(row)
    return header, cells


def caption(test: dict[str, Any], reference: str = "dcas") -> str:
    chance = test.get("leakage_chance")
    return (f"mean [bootstrap 95% CI over users]; p: two-sided paired sign-flip test against {reference} on the same "
            "users" + (f"; probes: balanced accuracy naming the culture (chance {chance:.3f})" if chance else "")
            + (f" / the source (chance {test['source_chance']:.3f})" if test.get("source_chance") else ""))


def markdown(title: str, header: list[str], cells: list[list[str]], note: str) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([*lines, "", note]) + "\n"
