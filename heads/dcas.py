"""The dcas head (seed 000): culture-aware, disentangled recommendation on frozen track vectors.

    just interactions dataset=demo                       # weak interactions (or import= real logs)
    just interactions dataset=demo split=last            # held-out pairs, stored (leave-last-out by ts)
    just train head=dcas dataset=demo backbone=musicnn-mtt interaction_split=last
    just train head=dcas dataset=demo backbone=musicnn-mtt interaction_split=last ablate=adv,ot,disentangle
    just train head=dcas dataset=D backbone=B source=collection    # second adversary: the data source

Model (heads/dcas_model.py): three Gaussian factors zc/zs/za with a decoder (MSE + β·KL), culture
classifier on zs, culture adversary on za by gradient reversal with Ganin's λ ramp (and a second
one against the data source when `source=COL` names a tracks column), InfoNCE on zc, decorrelation
(cross-covariance + HSIC + Gaussian total correlation), affect classifier on za (`affect=`
column), co-listening ranking loss on za after `rank_start`. Only train-split tracks' culture
(and source) labels are used in training, so the leakage probes on val/test tracks are honest.

Ablations are rows of the same run: `ablate=adv,ot,disentangle` trains (adv, disentangle) or
rescores (ot) one more model per listed part with that part off, named dcas-no_adv etc., ranked
on the same held-out pairs, in the same methods table as the baselines, each with its own za probes.

Recommendation (heads/dcas_ot.py): each user's train history, interaction weights as mass, is
transported by entropic OT (POT, batched log-domain Sinkhorn) onto every culture's tracks in za;
a track's score is log p(its culture | the history's culture mix, interaction weights as mass,
Jeffreys prior) plus the log of a softmax, inside its culture, of minus its transport-conditioned
cost (za is culture-invariant by design, so its costs cannot say which culture a user wants). The
dcas-no_ot row uses the kNN cost.

Evaluation (heads/recommend_metrics.py, heads/dcas_eval.py): full ranking of every track for every
user with held-out pairs (train tracks excluded): Recall/NDCG/hit@10,20,50 and MRR, per user
culture (the culture of most of the user's train plays) and per item culture, the cross-culture
slice (held-out tracks outside the user's dominant culture), coverage@20, minority exposure@20;
DCAS list metrics per (user, target culture); culture-leakage probe on za vs the raw vectors;
Wasserstein between cultures in za before vs after training. Baselines in the same table:
popularity, content cosine, item-kNN, BPR-MF, LightFM-like hybrid MF (heads/dcas_baselines.py); each
with a bootstrap 95% CI over users and a paired sign-flip test against DCAS (`just compare head=dcas`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from heads import dcas_baselines, dcas_eval
from heads import recommend_metrics as rm
from heads.data import Data, Selection, SelectionError
from heads.dcas_model import DCAS, Weights
from heads.protocol import Description, Inputs, Metric, Trained
from lake import interaction_splits, paths

ABLATIONS = ("adv", "ot", "disentangle")
BASELINES = ("popularity", "content", "item_knn", "bpr_mf", "lightfm_like")


@dataclass
class Config(Selection):
    target: str = "culture"          # the culture column
    affect: str = "affect_label"     # affect classifier on za when this column has values; none: off
    interaction_split: str = ""      # a stored interaction split; empty: leave-last-out made in memory (noted)
    hidden: int = 128
    z: int = 16                      # width of each factor
    epochs: int = 100
    batch: int = 256
    lr: float = 2e-3
    beta: float = 0.01
    culture_weight: float = 1.0
    adv_weight: float = 1.0
    infonce_weight: float = 0.5
    decor_weight: float = 1.0
    tc_weight: float = 0.1           # Gaussian total correlation between the factors
    affect_weight: float = 1.0
    rank_weight: float = 1.0
    warmup: float = 0.3              # share of training over which regularisers ramp up
    rank_start: float = 0.3          # share of training before the co-listening loss switches on
    noise: float = 0.1               # InfoNCE augmentation: Gaussian noise on the standardised vector
    ot_epsilon: float = 0.05         # entropic regularisation relative to the median cost
    source: str = ""                 # a tracks column naming the data source (dataset, collection): a second
                                     # adversary on za and its own probe; empty: off
    ablate: tuple[str, ...] = ()     # adv, ot, disentangle: each adds a row with that part off (dcas-no_adv)
    baselines: bool = True
    bpr_factors: int = 32
    bpr_iterations: int = 100
    k: int = 20                      # list length of the list metrics and the headline @k
    user_block: int = 64             # users scored at once

    def __post_init__(self) -> None:
        super().__post_init__()
        paths.check_name("target", self.target)
        if self.affect != "none":
            paths.check_name("affect", self.affect)
        if self.interaction_split:
            paths.check_name("interaction_split", self.interaction_split)
        if self.source:
            paths.check_name("source", self.source)
        if isinstance(self.ablate, str):
            self.ablate = tuple(a.strip() for a in self.ablate.split(",") if a.strip())
        unknown = [a for a in self.ablate if a not in ABLATIONS]
        if unknown:
            raise ValueError(f"ablate={unknown[0]}: one of {', '.join(ABLATIONS)}")
        for key in ("hidden", "z", "epochs", "batch", "bpr_factors", "bpr_iterations", "k", "user_block"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        for key in ("lr", "ot_epsilon"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}={getattr(self, key)}: must be a positive finite number")
        for key in ("beta", "culture_weight", "adv_weight", "infonce_weight", "decor_weight", "tc_weight",
                    "affect_weight", "rank_weight", "noise"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}={getattr(self, key)}: must be ≥ 0")
        for key in ("warmup", "rank_start"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key}={getattr(self, key)}: a share of training, 0..1")

    @property
    def variant(self) -> str:
        """The ablation rows and the source adversary tell runs apart; the full model is in every run."""
        return " ".join(([f"source={self.source}"] if self.source else [])
                        + ([f"ablations={','.join(self.ablate)}"] if self.ablate else []))

    def rows(self) -> dict[str, frozenset[str]]:
        """Method name → the parts switched off: the full model first, then one row per ablation."""
        return {"dcas": frozenset(), **{f"dcas-no_{a}": frozenset({a}) for a in self.ablate}}


HEADLINE = (
    Metric("ndcg_20", "NDCG@20", short="NDCG@20", format=".3f"),
    Metric("recall_20", "Recall@20", short="R@20", format=".3f"),
    Metric("mrr", "MRR", format=".3f"),
    Metric("cross_culture_recall_20", "cross-culture Recall@20", short="xR@20", format=".3f",
           about="xR@20: held-out tracks outside the user's dominant culture"),
    Metric("za_leakage", "culture probe on za", direction="min", short="za probe", format=".3f",
           about="za probe: balanced accuracy of a fresh classifier naming the culture from za (→ chance)"),
    Metric("raw_leakage", "culture probe on raw vectors", direction="none", short="raw probe", format=".3f"),
    Metric("leakage_chance", "chance", direction="none", format=".3f"),
    Metric("za_source_leakage", "source probe on za", direction="min", short="za src probe", format=".3f",
           about="za src probe: the same probe naming the data source (source=) from za (→ chance)"),
    Metric("raw_source_leakage", "source probe on raw vectors", direction="none", short="raw src probe",
           format=".3f"),
    Metric("source_chance", "source chance", direction="none", short="src chance", format=".3f"),
    Metric("ndcg_20_by_method", "NDCG@20", per_key=True, format=".3f",
           about="the same held-out pairs ranked by each method (bootstrap CIs in metrics.json methods)"),
)
COUNTS: tuple[str, ...] = ()


def inputs(cfg: Config) -> Inputs:
    columns = {"target": cfg.target, "title": "title"}
    if cfg.affect != "none":
        columns["affect"] = cfg.affect
    if cfg.source:
        columns["source"] = cfg.source
    return Inputs(columns=columns, required=("target",))


@dataclass
class Prepared:
    users: np.ndarray                 # user ids (rows of train/test)
    train: sparse.csr_matrix          # users × tracks, summed weights (history mass)
    test: sparse.csr_matrix           # users × tracks, 1 on held-out pairs
    cultures: list[str]
    culture: np.ndarray               # class index per track
    affects: list[str]
    affect: np.ndarray | None
    sources: list[str]
    source: np.ndarray | None         # class index per track of the source column (None: source= off)
    facts: dict[str, Any]
    notes: list[str]


def _codes(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    present = np.array([v is not None and v == v and str(v) != "" for v in values], dtype=bool)
    names = sorted({str(v) for v in values[present]})
    index = {n: i for i, n in enumerate(names)}
    return names, np.array([index[str(v)] if p else -1 for v, p in zip(values, present)], dtype=np.int64)


def prepare(cfg: Config, data: Data) -> Prepared:
    if "dcas" in data.memo:
        return data.memo["dcas"]
    inter = data.interactions()
    if not len(inter.user):
        raise SelectionError(f"dataset={cfg.dataset} has no interactions with the selected tracks: run just "
                             f"interactions dataset={cfg.dataset} (synthetic) or import= a log")
    frame = pl.DataFrame({"user_id": inter.users[inter.user], "track_id": data.track_ids[inter.track],
                          "row": inter.track, "weight": inter.weight, "ts": inter.ts})
    pairs = frame.group_by(["user_id", "track_id"]).agg(pl.col("row").first(), pl.col("weight").sum(),
                                                        pl.col("ts").max())
    notes = []
    if cfg.interaction_split:
        try:
            stored = interaction_splits.load(cfg.dataset, cfg.interaction_split)
        except ValueError as err:
            raise SelectionError(str(err)) from None
        # the held-out pairs decide every number: a remade split must change the run's fingerprint
        data.cover(f"interaction split {cfg.interaction_split}",
                   stored.sort(["user_id", "track_id"]).to_arrow())
        joined = pairs.join(stored, on=["user_id", "track_id"], how="left")
        missing = joined.filter(pl.col("part").is_null()).height
        if missing:
            raise SelectionError(f"interaction_split={cfg.interaction_split}: {missing} (user, track) pairs of the "
                                 "interactions are not in it (the interactions changed since): remake it with "
                                 f"just interactions dataset={cfg.dataset} split={cfg.interaction_split}")
        split = joined.select(["user_id", "track_id", "part"])
    else:
        split = interaction_splits.assign(pairs.select(["user_id", "track_id", "ts"]).sort(["user_id", "track_id"]),
                                          interaction_splits.SplitConfig(cfg.dataset, "memory", seed=cfg.seed))
        notes.append("no interaction_split= given: leave-last-out by ts made in memory (not stored); store one "
                     f"with just interactions dataset={cfg.dataset} split=last")
    summary = interaction_splits.summarise(split)
    pairs = pairs.join(split, on=["user_id", "track_id"]).sort(["user_id", "track_id"])
    users, user = np.unique(pairs.get_column("user_id").to_numpy().astype(str), return_inverse=True)
    rows = pairs.get_column("row").to_numpy()
    weight = np.maximum(pairs.get_column("weight").to_numpy(), 1e-6)  # a 0-weight play still happened
    is_test = pairs.get_column("part").to_numpy() == "test"
    shape = (len(users), len(data.track_ids))
    train = sparse.csr_matrix((weight[~is_test], (user[~is_test], rows[~is_test])), shape=shape)
    test = sparse.csr_matrix((np.ones(is_test.sum()), (user[is_test], rows[is_test])), shape=shape)
    cultures, culture = _codes(data.column(cfg.target))
    affects, affect = ([], None)
    if cfg.affect != "none":
        affects, affect = _codes(data.column(cfg.affect))
        if len(affects) < 2:
            affects, affect = [], None
    sources, source = ([], None)
    if cfg.source:
        sources, source = _codes(data.column(cfg.source))
        if len(sources) < 2:
            notes.append(f"source={cfg.source} has {len(sources)} value(s) among the selected tracks: "
                         "no source adversary (it needs 2 or more)")
            sources, source = [], None
    facts = {"users": len(users), "pairs": summary.pairs, "test_pairs": summary.test_pairs,
             "users_train_only": summary.users_train_only, "cold_test_tracks": summary.cold_test_tracks,
             "cold_test_pairs": summary.cold_test_pairs, "cultures": cultures,
             "interactions_outside_selection": inter.outside}
    data.memo["dcas"] = Prepared(users, train, test, cultures, culture, affects, affect, sources, source, facts,
                                 notes)
    return data.memo["dcas"]


def describe(cfg: Config, data: Data) -> Description:
    prep = prepare(cfg, data)
    if len(prep.cultures) < 2:
        raise SelectionError(f"target={cfg.target}: DCAS needs 2 or more cultures (found {len(prep.cultures)})")
    f = prep.facts
    line = (f"{f['users']} users, {f['pairs']:,} pairs ({f['test_pairs']:,} held out), "
            f"{len(prep.cultures)} cultures of {cfg.target}")
    report = [f"- {f['users_train_only']} users have too few pairs to hold one out (train only)",
              f"- {f['cold_test_tracks']} held-out tracks ({f['cold_test_pairs']} pairs) never appear in train",
              f"- {f['interactions_outside_selection']} interactions name tracks outside the selection"]
    return Description(line, f, "\n".join(report))


def build(cfg: Config, seed: int, data: Data, ablate: frozenset[str] = frozenset()) -> DCAS:
    prep = prepare(cfg, data)
    weights = Weights(beta=cfg.beta, culture=cfg.culture_weight, adv=cfg.adv_weight, infonce=cfg.infonce_weight,
                      decor=cfg.decor_weight, tc=cfg.tc_weight, affect=cfg.affect_weight, rank=cfg.rank_weight)
    return DCAS(prep.cultures, prep.affects, hidden=cfg.hidden, z=cfg.z, epochs=cfg.epochs, batch=cfg.batch,
                lr=cfg.lr, weights=weights, ablate=ablate, warmup=cfg.warmup,
                rank_start=cfg.rank_start, noise=cfg.noise, seed=seed, sources=prep.sources)


def _summary(ranked: dict[str, rm.Ranked], reference: str, seed: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, r in ranked.items():
        out[name] = {}
        for metric, values in r.per_user.items():
            lo, hi = rm.bootstrap_ci(values, seed=seed)
            entry = {"mean": float(values.mean()), "ci": [lo, hi]}
            if name != reference:
                entry["p_vs_dcas"] = rm.paired_test(ranked[reference].per_user[metric], values, seed=seed)
            out[name][metric] = entry
    return out


def train(cfg: Config, data: Data, seed: int) -> Trained:
    prep = prepare(cfg, data)
    layer = data.layers[0]
    X = data.features(layer).astype(np.float64)
    fit_rows = data.part("train")
    eval_rows = ~fit_rows if (~fit_rows).any() else fit_rows
    # only train-split tracks' labels reach training, so the probes on the other tracks are honest
    culture_fit = np.where(fit_rows, prep.culture, -1)
    affect_fit = np.where(fit_rows, prep.affect, -1) if prep.affect is not None else None
    source_fit = np.where(fit_rows, prep.source, -1) if prep.source is not None else None
    train_user, train_track = prep.train.nonzero()
    before = build(cfg, seed, data)
    before.epochs = 0
    za_before = before.fit(X, culture_fit, affect_fit, train_user, train_track, source_fit).factors(X)["za"]
    seen = (prep.train > 0).astype(np.float32).tocsr()
    C = len(prep.cultures)
    fitted: dict[frozenset[str], DCAS] = {}
    methods: dict[str, Any] = {}
    factors_of: dict[str, dict[str, np.ndarray]] = {}
    for name, off in cfg.rows().items():
        network_off = off - {"ot"}   # ablate=ot changes the recommender, not the network: reuse it
        if network_off not in fitted:
            fitted[network_off] = build(cfg, seed, data, network_off).fit(X, culture_fit, affect_fit, train_user,
                                                                           train_track, source_fit)
        factors_of[name] = fitted[network_off].factors(X)
        methods[name] = dcas_eval.OTScorer(prep.train, factors_of[name]["za"], factors_of[name]["zs"], prep.culture,
                                           C, cfg.ot_epsilon, use_ot="ot" not in off, k=cfg.k)
    model, factors, dcas = fitted[frozenset()], factors_of["dcas"], methods["dcas"]
    if cfg.baselines:
        methods.update(popularity=dcas_baselines.popularity(seen), content=dcas_baselines.content_cosine(seen, X),
                       item_knn=dcas_baselines.item_knn(seen),
                       bpr_mf=dcas_baselines.bpr_mf(seen, cfg.bpr_factors, cfg.bpr_iterations, seed),
                       lightfm_like=dcas_baselines.hybrid_mf(seen, X, cfg.bpr_factors, cfg.bpr_iterations, seed))
    ranked = {name: rm.rank_users(score, seen, prep.test, block=cfg.user_block) for name, score in methods.items()}
    metrics = evaluate(cfg, prep, ranked, dcas, X, factors, za_before, fit_rows, eval_rows, seed)
    probes = {name: _probes(prep, f["za"], X, fit_rows, eval_rows, seed) for name, f in factors_of.items()}
    metrics["za_leakage_by_method"] = {name: p["za_leakage"] for name, p in probes.items()}
    if prep.source is not None:
        metrics["za_source_leakage_by_method"] = {name: p["za_source_leakage"] for name, p in probes.items()}
    notes = prep.notes + dcas.notes
    artifacts = {"factors.parquet": _factors_writer(data, cfg, factors),
                 "histories.parquet": _histories_writer(prep, data)}
    return Trained(model, {"test": metrics, "layer": layer, "history": model.history_}, model.checkpoint(), layer,
                   notes, artifacts)


def _probes(prep: Prepared, za: np.ndarray, X: np.ndarray, fit_rows: np.ndarray, eval_rows: np.ndarray,
            seed: int) -> dict[str, float]:
    """The culture probe on za, and the source probe when source= is on (balanced accuracy → chance)."""
    out = {"za_leakage": dcas_eval.leakage_probe(za, prep.culture, fit_rows, eval_rows, seed)}
    if prep.source is not None:
        out["za_source_leakage"] = dcas_eval.leakage_probe(za, prep.source, fit_rows, eval_rows, seed)
    return out


def _factors_writer(data: Data, cfg: Config, factors: dict[str, np.ndarray]):  # noqa: ANN202
    """track_id, culture, title, zs, za of every selected track: what `just recommend` transports in."""
    def write(path: Path) -> None:
        columns = {"track_id": pa.array(data.track_ids, pa.string()),
                   "culture": pa.array(data.column(cfg.target), pa.string()),
                   "title": pa.array(data.column("title"), pa.string())}
        for name in ("zs", "za"):
            columns[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(factors[name].astype(np.float32).ravel()), factors[name].shape[1])
        pq.write_table(pa.table(columns), path)
    return write


def _histories_writer(prep: Prepared, data: Data):  # noqa: ANN202
    """user_id, track_id, weight of every train pair: the histories `just recommend` starts from."""
    def write(path: Path) -> None:
        coo = prep.train.tocoo()
        pq.write_table(pa.table({"user_id": pa.array(prep.users[coo.row], pa.string()),
                                 "track_id": pa.array(data.track_ids[coo.col], pa.string()),
                                 "weight": pa.array(coo.data, pa.float64())}), path)
    return write


def evaluate(cfg: Config, prep: Prepared, ranked: dict[str, rm.Ranked], dcas: dcas_eval.OTScorer, X: np.ndarray,
             factors: dict[str, np.ndarray], za_before: np.ndarray, fit_rows: np.ndarray, eval_rows: np.ndarray,
             seed: int) -> dict[str, Any]:
    C = len(prep.cultures)
    main = ranked["dcas"]
    out: dict[str, Any] = {f"{name.replace('@', '_')}": float(v.mean()) for name, v in main.per_user.items()}
    dominant = _dominant(prep)
    cross = prep.culture[main.test_pairs[:, 1]] != dominant[main.users[main.test_pairs[:, 0]]]
    for name, r in ranked.items():
        prefix = "" if name == "dcas" else f"{name}_"
        out[f"{prefix}cross_culture_recall_20"] = float(np.mean(r.test_ranks[cross] < 20)) if cross.any() else None
    out["cross_culture_pairs"] = int(cross.sum())
    out["coverage_20"] = rm.coverage(main, X.shape[0], 20)
    out["minority_exposure_20"] = dcas_eval.minority_exposure(main.top, prep.culture, prep.train, C, 20)
    for name, values in dcas.lists.items():
        if name != "target_culture":
            out[name] = float(np.mean(values)) if values else None
    out.update(_probes(prep, factors["za"], X, fit_rows, eval_rows, seed))
    out["raw_leakage"] = dcas_eval.leakage_probe(X, prep.culture, fit_rows, eval_rows, seed)
    out["leakage_chance"] = 1.0 / C
    if prep.source is not None:
        out["raw_source_leakage"] = dcas_eval.leakage_probe(X, prep.source, fit_rows, eval_rows, seed)
        out["source_chance"] = 1.0 / len(prep.sources)
    out["wasserstein_before"] = dcas_eval.culture_wasserstein(za_before, prep.culture, C, seed)
    out["wasserstein_after"] = dcas_eval.culture_wasserstein(factors["za"], prep.culture, C, seed)
    out["ot_epsilon_used"] = float(max(dcas.epsilons)) if dcas.epsilons else None
    out["ndcg_20_by_method"] = {name: float(r.per_user["ndcg@20"].mean()) for name, r in ranked.items()}
    out["recall_20_by_method"] = {name: float(r.per_user["recall@20"].mean()) for name, r in ranked.items()}
    user_culture = dominant[main.users]
    out["ndcg_20_by_user_culture"] = {prep.cultures[c]: float(main.per_user["ndcg@20"][user_culture == c].mean())
                                      for c in range(C) if np.any(user_culture == c)}
    out["recall_20_by_item_culture"] = {prep.cultures[int(c)]: v for c, v in
                                        rm.item_slice(main, prep.culture, 20).items() if int(c) >= 0}
    out["methods"] = _summary(ranked, "dcas", seed)
    out["projection"] = _projection(factors, prep.culture, prep.cultures, seed)
    return out


def _projection(factors: dict[str, np.ndarray], culture: np.ndarray, cultures: list[str], seed: int,
                limit: int = 400) -> dict[str, list]:
    """2-D PCA of za and zs for up to `limit` tracks (for the report's plot), with their cultures."""
    rows = np.random.default_rng(seed).permutation(len(culture))[:limit]
    out: dict[str, list] = {"culture": [cultures[c] if c >= 0 else "" for c in culture[rows]]}
    for name in ("za", "zs"):
        Z = factors[name][rows] - factors[name][rows].mean(0)
        axes = np.linalg.svd(Z, full_matrices=False)[2][:2]
        out[name] = np.round(Z @ axes.T, 4).tolist()
    return out


def _dominant(prep: Prepared) -> np.ndarray:
    """Each user's culture with the most train mass (-1 when none of it has a culture)."""
    user, track = prep.train.nonzero()
    known = prep.culture[track] >= 0
    counts = np.zeros((prep.train.shape[0], len(prep.cultures)))
    np.add.at(counts, (user[known], prep.culture[track[known]]), np.asarray(prep.train[user[known], track[known]]).ravel())
    return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lake.atomic import atomic_path

    test = result.get("test", {})
    by_culture = test.get("ndcg_20_by_user_culture") or {}
    if not by_culture:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ndcg_by_culture.png"
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(list(by_culture), [v or 0.0 for v in by_culture.values()])
    ax.set_ylabel("NDCG@20 (DCAS)")
    ax.set_title("per user culture")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    drawn = [path]
    projection = test.get("projection") or {}
    if projection.get("za"):
        path = folder / "factors_2d.png"
        labels = np.array(projection["culture"])
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
        for ax, name in zip(axes, ("za", "zs")):
            points = np.asarray(projection[name])
            for value in sorted(set(labels)):
                mine = labels == value
                ax.scatter(points[mine, 0], points[mine, 1], s=6, label=value or "none")
            ax.set_title(f"{name} (PCA), coloured by culture")
        axes[1].legend(fontsize=7, markerscale=2)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        drawn.append(path)
    return drawn
