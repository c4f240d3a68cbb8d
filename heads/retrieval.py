"""The retrieval head (seed 003): which glossary terms does an audio chunk hold, or none?

    just train head=retrieval dataset=terms backbone=logmel split=default
    just train head=retrieval dataset=terms backbone=whisper-base text_model=hf:BAAI/bge-small-en-v1.5 \
        hard_negatives=glossary hard_k=10 max_false_accept=0.05
    just search-terms run=latest dataset=terms chunk1.wav chunk2.wav k=5

Inputs: `target=` the tracks column of terms (default `terms`: main terms, normalised at
ingest by ingest.glossary), `text=` the chunk transcript column (`none`: no audio↔text loss),
the dataset's `glossary` table (every main term is a candidate; aliases are folded into their
main term) and the audio vectors of `backbone=`. Text vectors come from `text_model=`
(heads/retrieval_text.py: `minilm` offline default, `hash`, `hf:<id or dir>`, `muq-mulan`),
stored once per text model. The glossary rows and the text vectors read are folded into the
run's data fingerprint (`Data.cover`): another glossary or other stored vectors, another hash.

Model: audio vector (standardised with train statistics) → Linear → ReLU → Dropout → Linear →
`dim` (512), text vector → the same shape of MLP → `dim`; both L2-normalised, similarity =
cosine / `temperature`. Loss (heads/retrieval_loss.py) = term_weight · InfoNCE(audio ↔ term) +
text_weight · InfoNCE(audio ↔ chunk text), each both directions, multi-positive: a chunk's other
terms are never its negatives, a term in several chunks of a batch is one column, equal chunk
texts are each other's positives. `hard_negatives=glossary` adds, per step, the `hard_k`
nearest main terms (text space) of the batch's positive terms, each with probability
`hard_ratio`, never a positive of the batch. `no_term=true` trains on chunks without a term
(negatives of every term in the term→audio direction); false keeps them out of training (val
still calibrates on them). AdamW, early stopping on val audio→term mAP@10 (`patience`; a tie
with the best so far counts as progress and its later weights are kept).

Rejection: a chunk's score is its best term similarity, and with `no_term=true` minus its
similarity to a learned "no term" vector (one more column in the audio→term InfoNCE: the
positive of every chunk without a term, a negative of every other: it learns what "no term"
sounds like, which the bare best similarity cannot). The threshold is the lowest one whose false-accept rate on val's no-term chunks is ≤
`max_false_accept`. Stored in model.pt.
Metrics: heads/retrieval_metrics.py. Plots: similarity histograms (term vs no-term), ROC.
Artifact: `index.faiss`, a FAISS inner-product index over the projected, normalised main terms
(row i = checkpoint["terms"][i]), which `just search-terms` reads.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from heads import lbfgs
from heads import retrieval_loss as rl
from heads import retrieval_metrics as rm
from heads.data import Data, Selection, SelectionError
from heads.protocol import Description, Inputs, Metric, Trained
from heads.retrieval_text import text_vectors
from lake import catalog, paths
from lake.atomic import atomic_path


@dataclass
class Config(Selection):
    target: str = "terms"            # tracks column: list of main terms (empty: no term)
    text: str = "text"               # tracks column: the chunk's transcript; none: no audio↔text loss
    text_model: str = "minilm"       # minilm | hash | hf:<hub id or dir> | muq-mulan
    dim: int = 512                   # the shared space
    hidden: int = 512                # hidden units of each projection MLP
    dropout: float = 0.1
    temperature: float = 0.07
    term_weight: float = 0.7         # audio ↔ term InfoNCE
    text_weight: float = 0.3         # audio ↔ chunk text InfoNCE
    hard_negatives: str = "none"     # none | glossary
    hard_k: int = 10                 # glossary neighbours per positive term
    hard_ratio: float = 0.5          # share of those neighbours added each step
    no_term: bool = True             # train on chunks without a term
    max_false_accept: float = 0.05   # the rejection threshold's false-accept rate on val
    epochs: int = 100
    patience: int = 15
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        paths.check_name("target", self.target)
        if self.text != "none":
            paths.check_name("text", self.text)
        if self.hard_negatives not in ("none", "glossary"):
            raise ValueError(f"hard_negatives={self.hard_negatives}: none or glossary")
        for key in ("dim", "hidden", "epochs", "patience", "hard_k"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        if not self.batch >= 2:
            raise ValueError(f"batch={self.batch}: must be 2 or more (InfoNCE needs in-batch negatives)")
        for key in ("temperature", "lr"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}={getattr(self, key)}: must be a positive finite number")
        for key in ("term_weight", "text_weight", "weight_decay"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}={getattr(self, key)}: must be a finite number ≥ 0")
        if not self.term_weight + self.text_weight > 0:
            raise ValueError("term_weight and text_weight are both 0: nothing to learn")
        for key in ("dropout", "hard_ratio", "max_false_accept"):
            if not 0 <= getattr(self, key) <= 1 or (key == "dropout" and self.dropout == 1):
                raise ValueError(f"{key}={getattr(self, key)}: must be in [0, 1]")

    @property
    def variant(self) -> str:
        parts = [self.text_model]
        if self.hard_negatives != "none":
            parts.append(f"hard {self.hard_k}")
        if not self.no_term:
            parts.append("no no-term")
        return " · ".join(parts)


HEADLINE = (
    Metric("recall_at_1", "audio→term Recall@1", short="R@1", format=".3f"),
    Metric("recall_at_5", "audio→term Recall@5", short="R@5", format=".3f"),
    Metric("recall_at_10", "audio→term Recall@10", short="R@10", format=".3f"),
    Metric("map_at_10", "mAP@10", short="mAP@10", format=".3f"),
    Metric("rejection_rate", "rejection rate (no-term chunks)", short="reject", format=".3f"),
    Metric("false_accept_rate", "false-accept rate", short="FA", direction="min", format=".3f"),
    Metric("roc_auc", "accept/reject ROC-AUC", short="AUC", format=".3f"),
    Metric("eer", "accept/reject EER", short="EER", direction="min", format=".3f"),
)
COUNTS: tuple[str, ...] = ()


def inputs(cfg: Config) -> Inputs:
    columns = {"target": cfg.target}
    if cfg.text != "none":
        columns["text"] = cfg.text
    return Inputs(columns=columns)


@dataclass
class Prepared:
    terms: list[str]                 # main terms, sorted: column j of every similarity matrix
    aliases: dict[str, str]          # alias → main term (display and search output)
    positives: list[np.ndarray]      # per selected row: int64 ids into terms
    term_vectors: np.ndarray         # float32 [terms, text dim]
    text_ids: np.ndarray             # int64 per row: id of its chunk text, -1 without text
    text_vectors: np.ndarray         # float32 [distinct texts, text dim]
    glossary_rows: int


def _glossary(data: Data) -> tuple[list[str], dict[str, str]]:
    # a dataset without a glossary (the view is empty): the chunks' own terms are the glossary
    rows = catalog.connect().sql("SELECT term, main_term FROM glossary WHERE dataset = $d ORDER BY term, main_term",
                                 params={"d": data.selection.dataset}).to_arrow_table()
    data.cover("glossary", rows)
    pairs = list(zip(rows.column("term").to_pylist(), rows.column("main_term").to_pylist()))
    return sorted({m for _, m in pairs if m}), {t: m for t, m in pairs if t and m and t != m}


def _covered_vectors(data: Data, label: str, model: str, texts: list[str]) -> np.ndarray:
    """text_vectors, folded into the run's fingerprint: the stored vectors decide the numbers too."""
    vectors = text_vectors(model, texts)
    data.cover(label, pa.table({"text": pa.array(texts, pa.string()),
                                "emb": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), max(vectors.shape[1], 1))
                                if len(texts) else pa.array([], pa.list_(pa.float32()))}))
    return vectors


def prepare(cfg: Config, data: Data) -> Prepared:
    memo = ("retrieval.prepared", cfg.target, cfg.text, cfg.text_model)
    if memo in data.memo:
        return data.memo[memo]
    if not data.types[cfg.target].endswith("[]"):
        raise SelectionError(f"target={cfg.target} is {data.types[cfg.target]}, not a list of terms (VARCHAR[])")
    main, aliases = _glossary(data)
    raw = data.column(cfg.target)
    chunk_terms = [[aliases.get(str(t), str(t)) for t in (r if r is not None else [])] for r in raw]
    terms = sorted(set(main) | {t for r in chunk_terms for t in r})
    if not terms:
        raise SelectionError(f"target={cfg.target}: no chunk names a term and the dataset has no glossary")
    index = {t: i for i, t in enumerate(terms)}
    positives = [np.array(sorted({index[t] for t in r}), np.int64) for r in chunk_terms]
    if not any(len(p) for p, train in zip(positives, data.part("train")) if train):
        raise SelectionError(f"target={cfg.target}: no train chunk has a term; nothing to retrieve")
    term_vectors = _covered_vectors(data, f"text_embeddings {cfg.text_model} terms", cfg.text_model, terms)
    text_ids = np.full(len(raw), -1, np.int64)
    distinct: list[str] = []
    if cfg.text != "none":
        texts = data.column(cfg.text)
        seen: dict[str, int] = {}
        for i, text in enumerate(texts):
            if isinstance(text, str) and text.strip():
                key = " ".join(text.split())
                text_ids[i] = seen.setdefault(key, len(seen))
        distinct = list(seen)
    chunk_vectors = (_covered_vectors(data, f"text_embeddings {cfg.text_model} chunk texts", cfg.text_model, distinct)
                     if distinct else np.zeros((0, term_vectors.shape[1]), np.float32))
    data.memo[memo] = Prepared(terms, aliases, positives, term_vectors, text_ids, chunk_vectors, len(main))
    return data.memo[memo]


def describe(cfg: Config, data: Data) -> Description:
    p = prepare(cfg, data)
    counts = {part: {"chunks": int(data.part(part).sum()),
                     "no_term": int(sum(1 for x, m in zip(p.positives, data.part(part)) if m and not len(x)))}
              for part in data.parts()}
    facts = {"terms": len(p.terms), "aliases": len(p.aliases), "glossary_main_terms": p.glossary_rows,
             "text_model": cfg.text_model, "chunks": counts, "chunk_texts": int(len(p.text_vectors))}
    line = (f"{len(p.terms)} terms ({len(p.aliases)} aliases), "
            + ", ".join(f"{k} {v['no_term']} no-term" for k, v in counts.items()) + f", text model {cfg.text_model}")
    report = ["## Terms", "", "| split | chunks | without a term |", "|:---|---:|---:|",
              *(f"| {k} | {v['chunks']} | {v['no_term']} |" for k, v in counts.items()), "",
              f"{len(p.terms)} main terms ({p.glossary_rows} from the glossary table, {len(p.aliases)} aliases); "
              f"text model `{cfg.text_model}`.", ""]
    return Description(line, facts, "\n".join(report))


def _mlp(inp: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class Net(nn.Module):
    def __init__(self, audio_dim: int, text_dim: int, hidden: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.audio = _mlp(audio_dim, hidden, dim, dropout)
        self.text = _mlp(text_dim, hidden, dim, dropout)
        # "no term" as one more column: the positive of a chunk without a term, a negative of every other
        self.no_term = nn.Parameter(torch.randn(dim) * 0.01)

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.audio(x), dim=-1)

    def embed_text(self, t: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text(t), dim=-1)


HYPERPARAMETERS = ("dim", "hidden", "dropout", "temperature", "term_weight", "text_weight", "hard_negatives",
                   "hard_k", "hard_ratio", "no_term", "max_false_accept", "epochs", "patience", "batch", "lr",
                   "weight_decay")


class Retriever:
    """Projection heads + rejection threshold. Learned state ends in `_`."""

    def __init__(self, seed: int, terms: list[str], aliases: dict[str, str], **hyper: Any) -> None:
        self.seed, self.terms, self.aliases = seed, list(terms), dict(aliases)
        self.hyper = {k: hyper[k] for k in HYPERPARAMETERS}

    # --- fitting ------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, positives: list[np.ndarray], train: np.ndarray, val: np.ndarray,
            term_vectors: np.ndarray, text_ids: np.ndarray, chunk_vectors: np.ndarray) -> "Retriever":
        # one torch thread when a step's matrices are small (heads/lbfgs.py: a second thread only
        # adds synchronisation; measured here: 1,140 vs 122 chunks/s at batch 256 on 2 busy cores)
        step = self.hyper["batch"] * max(X.shape[1], term_vectors.shape[1])
        with lbfgs.torch_threads(1 if step < lbfgs.SMALL else torch.get_num_threads()):
            return self._fit(X, positives, train, val, term_vectors, text_ids, chunk_vectors)

    def _fit(self, X: np.ndarray, positives: list[np.ndarray], train: np.ndarray, val: np.ndarray,
             term_vectors: np.ndarray, text_ids: np.ndarray, chunk_vectors: np.ndarray) -> "Retriever":
        h = self.hyper
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.mean_ = X[train].mean(0).astype(np.float32)
        self.std_ = (X[train].std(0) + 1e-6).astype(np.float32)
        Xs = torch.from_numpy((X - self.mean_) / self.std_)
        T = torch.from_numpy(term_vectors)
        C = torch.from_numpy(chunk_vectors) if len(chunk_vectors) else None
        self.net_ = Net(X.shape[1], term_vectors.shape[1], h["hidden"], h["dim"], h["dropout"])
        opt = torch.optim.AdamW(self.net_.parameters(), lr=h["lr"], weight_decay=h["weight_decay"])
        near = rl.neighbours(term_vectors, h["hard_k"]) if h["hard_negatives"] == "glossary" else np.zeros((len(T), 0), np.int64)
        rows = np.flatnonzero(train)
        if not h["no_term"]:
            rows = rows[[len(positives[i]) > 0 for i in rows]]
        val_rows = np.flatnonzero(val)
        best, best_state, waited, history = -1.0, None, 0, []
        for epoch in range(h["epochs"]):
            self.net_.train()
            sums = np.zeros(3)
            steps = 0
            for batch in np.array_split(rng.permutation(rows), max(1, math.ceil(len(rows) / h["batch"]))):
                if len(batch) < 2:
                    continue
                losses = self._losses(Xs[batch], [positives[i] for i in batch], T, near, rng,
                                      text_ids[batch], C)
                opt.zero_grad()
                losses[0].backward()
                opt.step()
                sums += [float(x.detach()) for x in losses]
                steps += 1
            sims = self.similarities(X[val_rows], term_vectors)
            # mAP@10, not Recall@5: it sees the rank of every positive, so it does not saturate on a small glossary
            score = rm.audio_to_term(sims, [positives[i] for i in val_rows])["map_at_10"]
            score = -1.0 if score is None else score
            history.append({"epoch": epoch, "loss": sums[0] / max(steps, 1), "loss_term": sums[1] / max(steps, 1),
                            "loss_text": sums[2] / max(steps, 1), "val_map_at_10": score})
            # a tie counts as progress and keeps the later epoch: val mAP saturates on a small glossary
            # while the "no term" vector and the margins still improve (espeak demo, minilm, seeds
            # 0-2: test false-reject 0.14/0.22/0.50 → 0.01/0.09/0.12); `epochs` bounds a plateau
            if best_state is None or score >= best:
                best, best_state, waited = score, copy.deepcopy(self.net_.state_dict()), 0
            else:
                waited += 1
                if waited >= h["patience"]:
                    break
        self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.history_ = history
        self.term_space_ = self.project_terms(term_vectors)
        best_val = self.accept_scores(X[val_rows]) if len(val_rows) else np.zeros(0)
        no_term = np.array([not len(positives[i]) for i in val_rows], bool)
        self.threshold_ = rl.rejection_threshold(best_val[no_term], h["max_false_accept"])
        return self

    def _losses(self, x: torch.Tensor, pos: list[np.ndarray], T: torch.Tensor, near: np.ndarray,
                rng: np.random.Generator, text_ids: np.ndarray, C: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        h = self.hyper
        a = self.net_.embed_audio(x)
        zero = a.sum() * 0.0
        term_loss, text_loss = zero, zero
        batch_terms = np.unique(np.concatenate(pos)) if any(len(p) for p in pos) else np.zeros(0, np.int64)
        if len(batch_terms) and h["term_weight"] > 0:
            columns = np.concatenate([batch_terms, rl.hard_negatives(batch_terms, near, h["hard_ratio"], rng)])
            t = self.net_.embed_text(T[columns])
            mask = np.stack([np.isin(columns, p) for p in pos])
            empty = np.array([len(p) == 0 for p in pos])
            if h["no_term"] and empty.any():
                t = torch.cat([t, nn.functional.normalize(self.net_.no_term, dim=0)[None]])
                mask = np.concatenate([mask, empty[:, None]], axis=1)
            term_loss = rl.both_directions(a @ t.T / h["temperature"], torch.from_numpy(mask))
        has_text = text_ids >= 0
        if C is not None and has_text.sum() >= 2 and h["text_weight"] > 0:
            ids = text_ids[has_text]
            c = self.net_.embed_text(C[ids])
            mask = torch.from_numpy(ids[:, None] == ids[None, :])
            text_loss = rl.both_directions(a[torch.from_numpy(has_text)] @ c.T / h["temperature"], mask)
        total = h["term_weight"] * term_loss + h["text_weight"] * text_loss
        return total, term_loss, text_loss

    # --- using it -----------------------------------------------------------------------------
    @torch.no_grad()
    def project_audio(self, X: np.ndarray) -> np.ndarray:
        self.net_.eval()
        return self.net_.embed_audio(torch.from_numpy(((X - self.mean_) / self.std_).astype(np.float32))).numpy()

    @torch.no_grad()
    def project_terms(self, term_vectors: np.ndarray) -> np.ndarray:
        self.net_.eval()
        return self.net_.embed_text(torch.from_numpy(term_vectors.astype(np.float32))).numpy()

    def similarities(self, X: np.ndarray, term_vectors: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity [chunks, terms] in the shared space: against the fitted term space,
        or against `term_vectors` projected now (during fit, while the text MLP still learns)."""
        space = self.term_space_ if term_vectors is None else self.project_terms(term_vectors)
        return self.project_audio(X) @ space.T

    def accept_scores(self, X: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        """What the rejection threshold is applied to: the best term similarity, minus the
        similarity to the learned "no term" vector when no-term chunks trained it (no_term=true)."""
        sims = self.similarities(X) if sims is None else sims
        best = sims.max(1) if sims.shape[1] else np.full(len(sims), -np.inf)
        if not self.hyper["no_term"]:
            return best
        null = nn.functional.normalize(self.net_.no_term.detach(), dim=0).numpy()
        return best - self.project_audio(X) @ null

    def checkpoint(self) -> dict[str, Any]:
        return {"head": "retrieval", "seed": self.seed, "hyper": self.hyper, "terms": self.terms,
                "aliases": self.aliases, "state": self.net_.state_dict(), "mean": torch.from_numpy(self.mean_),
                "std": torch.from_numpy(self.std_), "threshold": float(self.threshold_),
                "term_space": torch.from_numpy(self.term_space_),
                "audio_dim": int(self.mean_.shape[0]), "text_dim": int(self.net_.text[0].in_features)}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> "Retriever":
        model = cls(ck["seed"], ck["terms"], ck["aliases"], **ck["hyper"])
        h = model.hyper
        model.net_ = Net(ck["audio_dim"], ck["text_dim"], h["hidden"], h["dim"], h["dropout"])
        model.net_.load_state_dict(ck["state"])
        model.net_.eval()
        model.mean_, model.std_ = ck["mean"].numpy(), ck["std"].numpy()
        model.threshold_ = ck["threshold"]
        model.term_space_ = ck["term_space"].numpy()
        return model


def build(cfg: Config, seed: int, data: Data) -> Retriever:
    p = prepare(cfg, data)
    return Retriever(seed, p.terms, p.aliases, **{k: getattr(cfg, k) for k in HYPERPARAMETERS})


def _train_layer(cfg: Config, data: Data, seed: int, layer: str) -> tuple[Retriever, dict[str, Any]]:
    p = prepare(cfg, data)
    X = data.features(layer)
    model = build(cfg, seed, data)
    model.fit(X, p.positives, data.part("train"), data.part("val"), p.term_vectors, p.text_ids, p.text_vectors)
    seen = {int(t) for pos, m in zip(p.positives, data.part("train")) if m for t in pos}
    metrics: dict[str, Any] = {}
    for part in [x for x in ("val", "test") if x in data.parts()]:
        rows = np.flatnonzero(data.part(part))
        sims = model.similarities(X[rows])
        metrics[part] = rm.evaluate(sims, [p.positives[i] for i in rows], model.threshold_, p.terms, seen,
                                    accept=model.accept_scores(X[rows], sims))
        with torch.no_grad():
            losses = model._losses(torch.from_numpy((X[rows] - model.mean_) / model.std_),
                                   [p.positives[i] for i in rows], torch.from_numpy(p.term_vectors),
                                   np.zeros((len(p.terms), 0), np.int64), np.random.default_rng(0), p.text_ids[rows],
                                   torch.from_numpy(p.text_vectors) if len(p.text_vectors) else None)
        metrics[part].update(loss=float(losses[0]), loss_term=float(losses[1]), loss_text=float(losses[2]))
    return model, metrics


def train(cfg: Config, data: Data, seed: int) -> Trained:
    chosen: tuple[str, Retriever, dict[str, Any]] | None = None
    per_layer = {}
    for layer in data.layers:
        model, metrics = _train_layer(cfg, data, seed, layer)
        per_layer[layer] = metrics["val"]["map_at_10"]
        if chosen is None or (metrics["val"]["map_at_10"] or 0) > (chosen[2]["val"]["map_at_10"] or 0):
            chosen = (layer, model, metrics)
    layer, model, metrics = chosen
    result = {**metrics, "layer": layer, "history": model.history_,
              "train_loss": {k: model.history_[-1][k] for k in ("loss", "loss_term", "loss_text")}}
    if len(data.layers) > 1:
        result["layers"] = per_layer
    notes = []
    if not np.isfinite(model.threshold_):
        notes.append("val has no chunk without a term: the rejection threshold accepts everything "
                     "(ingest no-term chunks to calibrate it)")
    checkpoint = {**model.checkpoint(), "layer": layer, "layer_of": data.layer_of[layer],
                  "backbones": list(cfg.backbone), "text_model": cfg.text_model}
    space = model.term_space_
    return Trained(model, result, checkpoint, layer, notes, {"index.faiss": lambda path: write_index(space, path)})


def write_index(space: np.ndarray, path: Path) -> None:
    import faiss

    index = faiss.IndexFlatIP(space.shape[1])
    index.add(np.ascontiguousarray(space, dtype=np.float32))
    faiss.write_index(index, str(path))


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    part = "test" if "test" in result else "val"
    if "best_similarity" not in result.get(part, {}):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    sims = result[part]["best_similarity"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bins = np.linspace(-1, 1, 41)
    ax.hist(sims["term"], bins=bins, alpha=0.6, label=f"chunks with a term ({len(sims['term'])})")
    ax.hist(sims["no_term"], bins=bins, alpha=0.6, label=f"no-term chunks ({len(sims['no_term'])})")
    if result[part].get("threshold") is not None:
        ax.axvline(result[part]["threshold"], color="black", lw=1, ls="--", label="rejection threshold")
    ax.set_xlabel("best term similarity (cosine)")
    ax.set_ylabel("chunks")
    ax.set_title(f"{'+'.join(data.selection.backbone)} · {part}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "similarities.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    out.append(path)
    roc = result[part].get("roc")
    if roc:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot(roc["fpr"], roc["tpr"], label=f"AUC {result[part]['roc_auc']:.3f}, EER {result[part]['eer']:.3f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlabel("false accept (no-term chunks accepted)")
        ax.set_ylabel("true accept (chunks with a term accepted)")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = folder / "roc.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        out.append(path)
    return out
