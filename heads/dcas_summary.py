"""One line about the newest dcas run of a dataset (the demo prints it):

    python -m heads.dcas_summary dataset=demo
    DCAS NDCG@20 0.214 [0.17, 0.26] vs popularity 0.071 (p=0.0005), content 0.190 (p=0.31); culture probe on za 0.41 vs raw 0.97 (chance 0.25)
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from lake import catalog
from lake.cli import UsageError, key_values, make_console, parse_config, run_main


@dataclass
class SummaryConfig:
    dataset: str = ""
    run: str = "latest"


def line(metrics: dict) -> str:
    test = metrics["test"]
    methods = test.get("methods", {})
    dcas = methods.get("dcas", {}).get("ndcg@20", {})
    lo, hi = dcas.get("ci", [float("nan")] * 2)
    others = ", ".join(f"{name} {methods[name]['ndcg@20']['mean']:.3f} (p={methods[name]['ndcg@20']['p_vs_dcas']:.2g})"
                       for name in ("popularity", "content") if name in methods)
    return (f"DCAS NDCG@20 {test['ndcg_20']:.3f} [{lo:.3f}, {hi:.3f}]" + (f" vs {others}" if others else "")
            + f"; culture probe on za {test['za_leakage']:.2f} vs raw {test['raw_leakage']:.2f} "
              f"(chance {test['leakage_chance']:.2f})")


def main(argv: list[str]) -> int:
    cfg = parse_config(SummaryConfig, key_values(argv))
    con = catalog.connect()
    found = con.execute("SELECT run_id, metrics FROM runs WHERE head = 'dcas' AND ($d = '' OR dataset = $d) "
                        "AND ($r = 'latest' OR run_id = $r) ORDER BY created_at DESC, run_id DESC LIMIT 1",
                        {"d": cfg.dataset, "r": cfg.run}).fetchall()
    if not found:
        raise UsageError("no dcas run" + (f" on dataset {cfg.dataset}" if cfg.dataset else "")
                         + " (train one: just train head=dcas dataset=... backbone=...)")
    make_console().print(line(json.loads(found[0][1])), highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    run_main(main)
