"""Heads: small models trained on SQL-selected embeddings (one module per head).

    just train head=probe dataset=eatd backbone=clap target=label      # heads/__main__.py
    just runs where="head = 'probe'"                                   # heads/runs.py
    just compare dataset=eatd head=probe target=affect_label           # heads/compare.py

`protocol` says what a head module provides, `registry.HEADS` lists them, `data` is the one
loader (selection → aligned arrays, with the data fingerprint), `train` fits seeds and records
a run (`record`: run folder + `runs` row; `report`: report.md), `metrics` the shared metrics,
`testing` hand-written tiny lakes for tests.
"""
