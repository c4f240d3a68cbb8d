"""Heads: small models trained on SQL-selected embeddings (one module per head).

    just train head=probe dataset=eatd backbone=clap target=label      # heads/__main__.py
    just train head=scorer dataset=demo backbone=musicnn-mtt split=singing adversary=speaker_id
    just runs where="head = 'probe'"                                   # heads/runs.py
    just compare dataset=eatd head=probe target=affect_label           # heads/compare.py
    just score run=latest head=scorer dataset=demo take.m4a            # heads/score.py

`protocol` says what a head module provides (all of it), `registry.HEADS` lists them, `data`
is the one loader (selection → aligned typed arrays, with the data fingerprint), `train` fits
seeds and records a run (`record`: run folder + `runs` row; `report`: report.md), `metrics`
the classification metrics and the seed aggregation, `ranking`/`ranking_metrics` the
scorer's losses and metrics, `testing` hand-written tiny lakes for tests.
"""
