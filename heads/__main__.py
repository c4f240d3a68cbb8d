"""`just train head=NAME dataset=... backbone=... target=... [key=value ...]`

    just train head=probe dataset=eatd backbone=clap target=label
    just train head=probe dataset=eatd backbone=muq,campplus target=label seeds=5       # fused features
    just train head=probe dataset=gtzan backbone=mert-v1-95m layer=all target=label where="duration_s > 5"
    just train head=scorer dataset=demo backbone=musicnn-mtt split=singing adversary=speaker_id

Keys are the head's Config fields (heads/<name>.py); an unknown key is named in a one-line error.
"""
from __future__ import annotations


from heads import registry
from heads.data import SelectionError
from heads.report import terminal
from heads.train import train_config, writes_run
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    head = pairs.pop("head", None)
    if not head:
        raise UsageError(f"missing head=NAME (heads: {', '.join(sorted(registry.HEADS))})")
    try:
        module = registry.get(head)
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    cfg = parse_config(module.Config, pairs)
    console = make_console(stderr=True)
    try:
        run = train_config(head, cfg, console)
    except (SelectionError, FileNotFoundError) as err:
        fail(str(err), code=1)
    if not writes_run():
        return 0
    seeds = run.metrics["seeds"]["values"]
    title = (f"{head} · {cfg.dataset} · {' ⊕ '.join(cfg.backbone)} · layer {run.row['layer']} · {cfg.target}"
             + (f" · mean ± std of {len(seeds)} seeds" if len(seeds) > 1 else ""))
    out = make_console()
    out.print(title, highlight=False)
    out.print(terminal(run.metrics))
    if "layers" in run.metrics:
        console.print(f"layer=all: {run.row['layer']} is best on val of {len(run.metrics['layers'])} layers")
    if "test" not in run.metrics:
        console.print(f"[yellow]split {cfg.split!r} has no test rows[/]: the numbers are on val, which also "
                      "chose the stopping epoch")
    console.print(f"wrote {run.folder}\n      {run.folder / 'report.md'}\nrun {run.run_id} (a row in runs; just runs)",
                  highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    run_main(main)
