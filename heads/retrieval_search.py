"""`just search-terms run=RUN FILE [FILE ...] k=5` — glossary terms spoken in audio files, or "no term".

    just search-terms run=20261130T125058Z-retrieval-d7dfdb chunk.wav k=5
    just search-terms run=latest dataset=spoken a.wav b.flac

Each file is embedded with the run's backbone exactly as the lake embedded its dataset
(embed/files.py), projected by the run's audio head, and searched in the run's `index.faiss`
(inner product of L2-normalised vectors = cosine). Prints the k best terms with their
similarity; a file whose accept score (the best similarity, minus its similarity to the learned
"no term" vector when the run trained one) is under the run's rejection threshold is "no term"
(its nearest terms are still listed, marked rejected). A file that cannot be read is named on
one line; the others are still searched, and the exit code is then 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape

from embed.files import FilesError, embed_files, load_model
from heads.retrieval import Retriever
from lake import catalog, paths, storage
from lake.cli import UsageError, fail, make_console, parse_config, run_main, split_args


@dataclass
class SearchConfig:
    run: str = "latest"      # a run_id, or latest (the newest retrieval run, on dataset= when given)
    dataset: str = ""
    k: int = 5
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.k >= 1:
            raise ValueError(f"k={self.k}: must be 1 or more")


def find_run(cfg: SearchConfig) -> dict[str, Any]:
    con = catalog.connect()
    row = con.execute(
        "SELECT run_id, head, dataset, backbones, path FROM runs WHERE ($run = '' OR run_id = $run) "
        "AND ($run <> '' OR head = 'retrieval') AND ($d = '' OR dataset = $d) "
        "ORDER BY created_at DESC, run_id DESC LIMIT 1",
        {"run": "" if cfg.run == "latest" else cfg.run, "d": cfg.dataset}).fetchone()
    if row is None:
        if cfg.run != "latest":
            raise UsageError(f"run={cfg.run!r} is not in the runs table (just runs lists them)")
        raise UsageError("run=latest: no retrieval run" + (f" on dataset {cfg.dataset}" if cfg.dataset else "")
                         + " (train one: just train head=retrieval dataset=... backbone=...)")
    run_id, head, dataset, backbones, path = row
    if head != "retrieval":
        raise UsageError(f"run {run_id} is a {head} run: just search-terms takes a retrieval run")
    return {"run_id": run_id, "dataset": dataset, "backbones": list(backbones), "folder": paths.root() / path}


def search(run: dict[str, Any], files: list[Path], k: int, device: str = "auto"
           ) -> tuple[dict[Path, list[tuple[str, float]]], dict[Path, bool], dict[Path, str]]:
    """{file: [(term, similarity)] best first}, {file: accepted}, {file: why it has no answer}."""
    import faiss

    folder = run["folder"]
    for name in ("model.pt", "index.faiss"):
        if not (folder / name).is_file():
            raise UsageError(f"run {run['run_id']}: {folder / name} is missing")
    checkpoint = torch.load(storage.readable(folder / "model.pt"), weights_only=True, map_location="cpu")
    model = Retriever.from_checkpoint(checkpoint)
    blocks, failed, kept = [], {}, None
    for backbone in checkpoint["backbones"]:
        layer = checkpoint["layer_of"][backbone]
        try:
            got = embed_files(files, backbone, [layer], device, loaded=load_model(backbone, device))
        except FilesError as err:
            raise UsageError(str(err)) from None
        failed.update(got.failed)
        blocks.append(dict(zip(got.paths, got.vectors[layer])))
        kept = [p for p in (kept if kept is not None else got.paths) if p in blocks[-1]]
    kept = kept or []
    if not kept:
        return {}, {}, failed
    X = np.stack([np.concatenate([b[p] for b in blocks]) for p in kept]).astype(np.float32)
    index_file = folder / "index.faiss"
    index = (faiss.deserialize_index(np.frombuffer(index_file.read_bytes(), np.uint8)) if storage.is_object(index_file)
             else faiss.read_index(str(index_file)))
    scores, ids = index.search(np.ascontiguousarray(model.project_audio(X)), min(k, index.ntotal))
    found = {p: [(model.terms[i], float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
             for p, row_ids, row_scores in zip(kept, ids, scores)}
    best = scores[:, :1].astype(np.float32)  # the index's best = the best term similarity
    accept = model.accept_scores(X, best)
    accepted = {p: bool(a >= model.threshold_) for p, a in zip(kept, accept)}
    return found, accepted, failed


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    cfg = parse_config(SearchConfig, pairs)
    if not words:
        raise UsageError("name one or more audio files: just search-terms run=RUN_ID FILE [FILE ...] k=5")
    run = find_run(cfg)
    found, accepted, failed = search(run, [Path(w).expanduser() for w in words], cfg.k, cfg.device)
    err = make_console(stderr=True)
    for path, reason in failed.items():
        err.print(f"[bold red]error:[/] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True)
    out = make_console()
    for path, terms in found.items():
        listed = ", ".join(f"{t} {s:.3f}" for t, s in terms)
        verdict = "" if accepted[path] else "no term  (nearest, rejected: "
        out.print(f"{escape(str(path))}: {verdict}{escape(listed)}{'' if accepted[path] else ')'}",
                  highlight=False, soft_wrap=True)
    if not found and not failed:
        fail("nothing searched")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
