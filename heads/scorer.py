"""The scorer head (seed 001): a ranking scorer of recordings on (fused) frozen embeddings.

    just train head=scorer dataset=demo backbone=musicnn-mtt split=singing
    just train head=scorer dataset=demo backbone=musicnn-mtt split=singing adversary=speaker_id
    just train head=scorer dataset=songs backbone=muq,campplus group=none loss=listmle
    just score run=latest head=scorer dataset=demo take1.wav take2.m4a

Inputs: `target=` the score column (higher is better; `none`: learn the order from `rank=`,
1 = best) and `group=` the column whose values are the lists to rank within (`none`: every
clip one group, ordered by score, as seed 001 does once its scores are absolute). Rows with a
NULL in either are dropped and counted.

Model: features standardised with train statistics → Linear → ReLU → Dropout (the hidden
layer) → Linear → one scalar. Losses: `listmle` (the Plackett–Luce likelihood of each group's
order best → worst; ties broken at random each epoch), `ranknet` (pairwise logistic with
`margin`), `mse` (on the standardised score). Each epoch deals groups longer than `max_list`
into random sub-lists (heads/ranking.py), `lists` lists per AdamW step. Early stopping on the
mean within-group Spearman on val (`patience` epochs).

Speaker adversary (`adversary=`): a classifier of a tracks column (`speaker_id`), or a
regressor of another backbone's vector (a speaker encoder such as CAM++), reads the hidden
layer through a gradient-reversal layer scaled by adv_weight · λ(p), λ(p) = 2/(1+exp(−10p)) − 1
over training progress p (Ganin et al.); its loss is added, so it learns the speaker while
the layer below unlearns it. The evidence: a fresh logistic regression trained on the frozen
hidden layer to name the speaker (`speaker_probe_accuracy`, against `speaker_chance`), with and
without the adversary.

Calibration: isotonic regression fitted on train maps the raw output to the score's own units
(0–100 in seed 001); the checkpoint stores its breakpoints, so `just score` answers in them.
Metrics (heads/ranking_metrics.py): Spearman ρ and Kendall τ overall and within groups,
pairwise accuracy within groups, NDCG@k per group, MAE/RMSE after calibration, rows, MAE and
accuracy per score band (`bands=50,85`: <50, 50–85, ≥85), system-level Spearman (mean score
per speaker), speaker-probe accuracy. Plots: predicted vs true, MAE per band. Artifact:
`predictions.parquet` (track_id, split, group, score, raw, calibrated) for every selected row.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.isotonic import IsotonicRegression
from torch import nn

from heads import lbfgs, ranking
from heads import ranking_metrics as rm
from heads.data import Data, Selection, SelectionError
from heads.protocol import Description, Inputs, Metric, Trained
from lake import paths
from lake.embeddings import parts

NUMERIC = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT")


@dataclass
class Config(Selection):
    target: str = "score"            # the score column, higher is better; none: learn from rank= alone
    group: str = "group_id"          # rank within groups of this column; none: all clips one group
    rank: str = "rank"               # 1 = best of its group; read when target=none
    speaker: str = "speaker_id"      # for the speaker probe and system-level Spearman; none: skip them
    loss: Literal["listmle", "ranknet", "mse"] = "listmle"
    hidden: int = 16                 # units of the hidden layer (the adversary and the speaker probe read it)
    dropout: float = 0.1
    epochs: int = 100
    patience: int = 15               # epochs without a better val within-group Spearman before stopping
                                     # (no adversary; with one the planned epochs run in full)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lists: int = 8                   # lists per AdamW step
    max_list: int = 32               # longer groups are dealt into random sub-lists of at most this many
    margin: float = 0.0              # ranknet: softplus(margin − (s_better − s_worse))
    adversary: str = "none"          # none | a tracks column (speaker_id) | a stored backbone (campplus)
    adv_weight: float = 1.0          # scales the reversed gradient (times Ganin's λ ramp)
    adv_lr: float = 1e-2             # the adversary's own learning rate: it must keep up with the layer it reads
    adv_hidden: int = 64             # the adversary's hidden units
    bands: tuple[float, ...] = (50.0, 85.0)  # score band edges: <50, 50–85, ≥85
    ndcg_k: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("target", "group", "rank", "speaker", "adversary"):
            if getattr(self, key) != "none":
                paths.check_name(key, getattr(self, key))
        if self.target == "none" and self.loss == "mse":
            raise ValueError("loss=mse needs scores: target=none learns from ranks (loss=listmle or ranknet)")
        # `not (x > 0)` rather than `x <= 0`: NaN fails every comparison and must fail the check
        for key in ("hidden", "epochs", "patience", "lists", "max_list", "ndcg_k", "adv_hidden"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        if self.max_list < 2:
            raise ValueError(f"max_list={self.max_list}: a list needs 2 or more clips")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr}: must be a positive finite number")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
        if not (self.adv_lr > 0 and math.isfinite(self.adv_lr)):
            raise ValueError(f"adv_lr={self.adv_lr}: must be a positive finite number")
        for key in ("weight_decay", "adv_weight", "margin"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}={getattr(self, key)}: must be a finite number ≥ 0")
        self.bands = tuple(float(b) for b in self.bands)
        if not self.bands or not all(math.isfinite(b) for b in self.bands) or \
                any(not b > a for a, b in zip(self.bands, self.bands[1:])):
            raise ValueError(f"bands={','.join(map(str, self.bands))}: one or more finite, increasing edges")

    @property
    def variant(self) -> str:
        if self.adversary == "none":
            return self.loss
        return f"{self.loss} · adv {self.adversary}" + (f"×{self.adv_weight:g}" if self.adv_weight != 1 else "")


HEADLINE = (
    Metric("spearman", "Spearman ρ", short="ρ", format=".3f"),
    Metric("pairwise_accuracy", "pairwise accuracy", short="pair acc", format=".3f"),
    Metric("ndcg", "NDCG@k per group", short="NDCG", format=".3f"),
    Metric("mae", "MAE", direction="min", format=".2f"),
    Metric("speaker_probe_accuracy", "speaker-probe accuracy", direction="min", short="spk probe", format=".3f",
           about="spk probe: a fresh classifier naming the speaker from the frozen hidden layer (lower: less identity)"),
    Metric("speaker_chance", "speaker chance", direction="none", short="chance", format=".3f"),
    Metric("band_accuracy", "accuracy per score band", short="band", per_key=True, format=".3f",
           about="score bands (<50, 50–85, ≥85 by default): the share of the clips of that true band predicted in it"),
)
COUNTS: tuple[str, ...] = ()


def adversary_kind(cfg: Config) -> Literal["none", "backbone", "column"]:
    """A stored backbone of this dataset when one has that name, else a tracks column."""
    if cfg.adversary == "none":
        return "none"
    return "backbone" if parts(cfg.dataset, cfg.adversary) else "column"


def inputs(cfg: Config) -> Inputs:
    columns = {"target": cfg.target} if cfg.target != "none" else {"rank": cfg.rank}
    if cfg.group != "none":
        columns["group"] = cfg.group
    if cfg.speaker != "none":
        columns["speaker"] = cfg.speaker
    kind = adversary_kind(cfg)
    if kind == "column":
        columns["adversary"] = cfg.adversary
    return Inputs(columns=columns, required=tuple(k for k in ("target", "rank", "group") if k in columns),
                  backbones=(cfg.adversary,) if kind == "backbone" else ())


@dataclass
class Targets:
    key: np.ndarray              # float64: higher is better (the score, or minus the rank)
    score: np.ndarray | None     # float64 scores, None when target=none
    groups: np.ndarray           # int64 group codes (all 0 when group=none)
    group_names: np.ndarray      # str, for the predictions table
    speakers: np.ndarray | None  # object: speaker per row, None for NULL
    adversary: np.ndarray | None  # int64 codes (-1: NULL) or float32 vectors
    adversary_classes: list[str] | None


def targets(cfg: Config, data: Data) -> Targets:
    """The head's view of the loaded columns, encoded once per run (data.memo)."""
    memo = ("scorer.targets", cfg.target, cfg.rank, cfg.group, cfg.speaker, cfg.adversary)
    if memo in data.memo:
        return data.memo[memo]
    column = cfg.target if cfg.target != "none" else cfg.rank
    key_name = "target" if cfg.target != "none" else "rank"
    if not any(data.types[column].startswith(t) for t in NUMERIC):
        raise SelectionError(f"{key_name}={column} is {data.types[column]}, not a number: the scorer ranks by a "
                             "numeric score (higher is better) or rank (1 is best)")
    values = data.column(column).astype(np.float64)
    score = values if cfg.target != "none" else None
    key = values if score is not None else -values
    if cfg.group != "none":
        group_names, groups = np.unique(data.column(cfg.group).astype(str), return_inverse=True)
    else:
        group_names, groups = np.array(["all"]), np.zeros(len(values), np.int64)
    speakers = data.column(cfg.speaker) if cfg.speaker != "none" else None
    adversary, classes = None, None
    kind = adversary_kind(cfg)
    if kind == "column":
        raw = data.column(cfg.adversary)
        known = raw != None  # noqa: E711 (object array: None is NULL)
        classes = sorted(str(c) for c in set(raw[known & data.part("train")].astype(str)))  # plain str: model.pt loads with weights_only
        if len(classes) < 2:
            raise SelectionError(f"adversary={cfg.adversary}: fewer than two values in train; nothing to unlearn")
        adversary = np.full(len(raw), -1, np.int64)
        adversary[known] = np.searchsorted(classes, raw[known].astype(str))
        adversary[known & ~np.isin(raw.astype(str), classes)] = -1  # values unseen in train teach nothing
    elif kind == "backbone":
        adversary = data.vectors(cfg.adversary)
    data.memo[memo] = Targets(key, score, groups.astype(np.int64), group_names, speakers, adversary, classes)
    return data.memo[memo]


def describe(cfg: Config, data: Data) -> Description:
    t = targets(cfg, data)
    train = data.part("train")
    sizes = np.bincount(t.groups[train])
    sizes = sizes[sizes > 0]
    lo, hi = t.key[train].min(), t.key[train].max()
    rankable = _rankable_groups(t.key[train], t.groups[train])
    if rankable == 0:
        raise SelectionError(f"no group of train has two clips with different {'scores' if t.score is not None else 'ranks'}: "
                             "nothing to rank (group=none ranks all clips as one group)")
    per_part = {p: int(len(np.unique(t.groups[data.part(p)]))) for p in data.parts()}
    split_code = np.unique(data.split, return_inverse=True)[1]
    pairs = np.unique(t.groups * 3 + split_code)  # distinct (group, split) pairs
    spanning = int(np.sum(np.bincount(pairs // 3) > 1)) if cfg.group != "none" else 0
    speakers = (len(set(t.speakers[t.speakers != None].astype(str))) if t.speakers is not None else 0)  # noqa: E711
    facts = {"groups": per_part, "groups_across_splits": spanning, "train_group_sizes": [int(sizes.min()), int(sizes.max())],
             "train_range": [float(lo), float(hi)] if t.score is not None else None, "speakers": speakers,
             "adversary": adversary_kind(cfg)}
    line = (f"{sum(per_part.values())} groups of {cfg.group} (train {per_part['train']}, sizes {sizes.min()}–{sizes.max()})"
            if cfg.group != "none" else "one group")
    line += f", scores {lo:g}–{hi:g}" if t.score is not None else ", ranks"
    line += f", {speakers} speakers" if speakers else ""
    report = ["## Groups", "", "| split | groups |", "|:---|---:|", *(f"| {p} | {n} |" for p, n in per_part.items()), ""]
    if spanning:
        report += [f"> {spanning} group(s) of `{cfg.group}` span two splits: make the split with "
                   f"`group={cfg.group}` so the takes of one song stay together.", ""]
    return Description(line, facts, "\n".join(report))


def _rankable_groups(key: np.ndarray, groups: np.ndarray) -> int:
    lo = np.full(groups.max() + 1, np.inf)
    hi = np.full(groups.max() + 1, -np.inf)
    np.minimum.at(lo, groups, key)
    np.maximum.at(hi, groups, key)
    return int(np.sum(hi > lo))


HYPERPARAMETERS = ("loss", "hidden", "dropout", "epochs", "patience", "lr", "weight_decay", "lists", "max_list",
                   "margin", "adv_weight", "adv_lr", "adv_hidden")


def threads(clips_per_step: int, dim: int) -> int:
    """One torch thread when a step's matrices are small (they are, unless lists are huge): a second
    thread only adds synchronisation, and on a busy machine it can stall each op for milliseconds
    (measured: 0.44 vs 1.4 ms per MSE step of 160 x 768 with 1 vs 2 threads on 2 shared cores)."""
    return 1 if clips_per_step * dim < lbfgs.SMALL else torch.get_num_threads()


class Net(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float, adversary_out: int, adv_hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, 1)
        self.adversary = (nn.Sequential(nn.Linear(hidden, adv_hidden), nn.ReLU(), nn.Linear(adv_hidden, adversary_out))
                          if adversary_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).squeeze(-1)


class Scorer:
    """Estimator: `Scorer(**hyperparameters).fit(X, key, groups, X_val, key_val, groups_val, ...)`."""

    def __init__(self, loss: str = "listmle", hidden: int = 16, dropout: float = 0.1, epochs: int = 100,
                 patience: int = 15, lr: float = 1e-3, weight_decay: float = 1e-4, lists: int = 8,
                 max_list: int = 32, margin: float = 0.0, adv_weight: float = 1.0, adv_lr: float = 1e-2,
                 adv_hidden: int = 64, seed: int = 0, adversary_classes: list[str] | None = None) -> None:
        self.loss, self.hidden, self.dropout, self.epochs, self.patience = loss, hidden, dropout, epochs, patience
        self.lr, self.weight_decay, self.lists, self.max_list, self.margin = lr, weight_decay, lists, max_list, margin
        self.adv_weight, self.adv_lr, self.adv_hidden, self.seed = adv_weight, adv_lr, adv_hidden, seed
        self.adversary_classes = adversary_classes

    # ---- training ------------------------------------------------------------------------

    def _standardise(self, X: np.ndarray) -> torch.Tensor:
        out = np.subtract(X, self.mean_, dtype=np.float32)
        out /= self.scale_
        return torch.from_numpy(out)

    def fit(self, X: np.ndarray, key: np.ndarray, groups: np.ndarray, X_val: np.ndarray, key_val: np.ndarray,
            groups_val: np.ndarray, score: np.ndarray | None = None, adversary: np.ndarray | None = None) -> Scorer:
        """`key`: higher is better; `score`: the scores (mse, calibration); `adversary`: int codes
        (-1 unknown) of `adversary_classes`, or float vectors to regress."""
        # float64 sums without a float64 copy of X (a 100k x 768 copy costs more than the sums)
        mean = X.mean(axis=0, dtype=np.float64)
        var = np.einsum("ij,ij->j", X, X, dtype=np.float64) / len(X) - mean ** 2
        std = np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        self.score_mean_, self.score_std_ = 0.0, 1.0
        if score is not None:  # loss=mse fits the standardised score
            self.score_mean_, self.score_std_ = float(score.mean()), float(score.std()) or 1.0
        with lbfgs.torch_threads(threads(self.lists * self.max_list, X.shape[1])):
            self._fit(self._standardise(X), key, groups, self._standardise(X_val), key_val, groups_val, score, adversary)
            raw = self.predict_raw(X)
        self.calibration_ = None
        if score is not None:  # isotonic: monotone, so the ranking metrics are those of the raw output
            iso = IsotonicRegression(out_of_bounds="clip").fit(raw, score)
            self.calibration_ = (iso.X_thresholds_.astype(np.float64), iso.y_thresholds_.astype(np.float64))
        return self

    def _adversary_target(self, adversary: np.ndarray | None) -> tuple[torch.Tensor | None, int]:
        if adversary is None:
            return None, 0
        if adversary.dtype.kind in "iu":
            return torch.from_numpy(adversary.astype(np.int64)), len(self.adversary_classes or [])
        mean, std = adversary.mean(axis=0), adversary.std(axis=0)
        return torch.from_numpy(((adversary - mean) / np.where(std > 1e-6, std, 1.0)).astype(np.float32)), adversary.shape[1]

    def _fit(self, X: torch.Tensor, key: np.ndarray, groups: np.ndarray, X_val: torch.Tensor, key_val: np.ndarray,
             groups_val: np.ndarray, score: np.ndarray | None, adversary: np.ndarray | None) -> None:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        target, adversary_out = self._adversary_target(adversary)
        self.adversary_out_ = adversary_out
        net = Net(X.shape[1], self.hidden, self.dropout, adversary_out, self.adv_hidden)
        scorer_params = [p for name, p in net.named_parameters() if not name.startswith("adversary.")]
        groups_ = [{"params": scorer_params}]
        if net.adversary is not None:
            groups_.append({"params": list(net.adversary.parameters()), "lr": self.adv_lr})
        opt = torch.optim.AdamW(groups_, lr=self.lr, weight_decay=self.weight_decay)
        key_t = torch.from_numpy(key.astype(np.float32))
        standard = (torch.from_numpy(((score - self.score_mean_) / self.score_std_).astype(np.float32))
                    if score is not None else None)
        self.history_: list[dict[str, float]] = []
        best: dict[str, Any] = {}
        step, total = 0, None
        for epoch in range(1, self.epochs + 1):
            net.train()
            batches = ranking.batches(ranking.sublists(groups, key, self.max_list, rng), self.lists, rng)
            total = total or self.epochs * len(batches)  # Ganin's p: progress over the planned steps
            running, items = 0.0, 0
            for block in batches:
                mask = torch.from_numpy(block >= 0)
                index = torch.from_numpy(np.where(block >= 0, block, 0))
                rows = index[mask]  # the clips only: padding never goes through the network
                hidden = net.encoder(X[rows])
                flat = net.head(hidden).squeeze(-1)
                scores = torch.zeros(mask.shape, dtype=flat.dtype).masked_scatter(mask, flat)
                loss = self._rank_loss(scores, key_t[index], mask, flat, standard[rows] if standard is not None else None)
                if net.adversary is not None:
                    scale = self.adv_weight * ranking.ganin_lambda(step / total)
                    guess = net.adversary(ranking.reverse_gradient(hidden, scale))
                    loss = loss + self._adversary_loss(guess, target[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                running += float(loss.detach()) * int(mask.sum())
                items += int(mask.sum())
            net.eval()
            with torch.no_grad():
                val = net(X_val).numpy().astype(np.float64)
            rho = rm.group_spearman(val, key_val, groups_val)[0]
            rho = -1.0 if math.isnan(rho) else rho
            self.history_.append({"epoch": epoch, "train_loss": running / max(items, 1), "val_spearman_group": rho})
            # With an adversary the planned schedule runs in full, and only epochs after λ has
            # ramped up (the second half) are candidates: val ranking alone prefers the least
            # debiased weights, since the speaker shortcut helps ranking.
            candidate = net.adversary is None or step / total >= 0.5 or epoch == self.epochs
            if candidate and (not best or rho > best["rho"]):
                best.update(rho=rho, state=copy.deepcopy(net.state_dict()), epoch=epoch)
            if net.adversary is None and epoch - best["epoch"] >= self.patience:
                break
        net.load_state_dict(best["state"])
        net.eval()
        self.net_, self.best_epoch_, self.epochs_run_ = net, best["epoch"], len(self.history_)
        self.best_score_ = {"val_spearman_group": best["rho"]}

    def _rank_loss(self, scores: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, flat: torch.Tensor,
                   standard: torch.Tensor | None) -> torch.Tensor:
        """scores/key/mask: [lists, longest]; flat: the same scores, clips only (for mse)."""
        if self.loss == "listmle":
            return ranking.listmle(scores, mask).sum() / mask.sum()
        if self.loss == "ranknet":
            return ranking.ranknet(scores, key, mask, self.margin)
        return ((flat - standard) ** 2).mean()

    def _adversary_loss(self, guess: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype == torch.int64:
            known = target >= 0
            if not known.any():
                return guess.sum() * 0.0
            return nn.functional.cross_entropy(guess[known], target[known])
        return ((guess - target) ** 2).mean()

    # ---- using it ------------------------------------------------------------------------

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net_(self._standardise(X)).numpy().astype(np.float64)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Raw output → the score's units (isotonic, clipped at the ends); raw when no scores were given."""
        if self.calibration_ is None:
            return raw
        return np.interp(raw, *self.calibration_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.predict_raw(X))

    def hidden_layer(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net_.encoder(self._standardise(X)).numpy()

    def checkpoint(self) -> dict[str, Any]:
        """A plain dict: everything needed to rebuild and use the scorer (`from_checkpoint`)."""
        return {
            "model": self.net_.state_dict(),
            "hyperparameters": {k: getattr(self, k) for k in (*HYPERPARAMETERS, "seed")},
            "dim": len(self.mean_), "adversary_out": self.adversary_out_, "adversary_classes": self.adversary_classes,
            "mean": torch.from_numpy(self.mean_), "scale": torch.from_numpy(self.scale_),
            "calibration": None if self.calibration_ is None else
            {"raw": torch.from_numpy(self.calibration_[0]), "score": torch.from_numpy(self.calibration_[1])},
            "best_epoch": self.best_epoch_, "best_score": self.best_score_, "epochs_run": self.epochs_run_,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> Scorer:
        scorer = cls(**checkpoint["hyperparameters"], adversary_classes=checkpoint["adversary_classes"])
        scorer.mean_, scorer.scale_ = checkpoint["mean"].numpy(), checkpoint["scale"].numpy()
        scorer.net_ = Net(checkpoint["dim"], scorer.hidden, scorer.dropout, checkpoint["adversary_out"], scorer.adv_hidden)
        scorer.net_.load_state_dict(checkpoint["model"])
        scorer.net_.eval()
        calibration = checkpoint["calibration"]
        scorer.calibration_ = None if calibration is None else (calibration["raw"].numpy(), calibration["score"].numpy())
        scorer.best_epoch_, scorer.epochs_run_ = checkpoint["best_epoch"], checkpoint["epochs_run"]
        return scorer


def build(cfg: Config, seed: int, data: Data) -> Scorer:
    return Scorer(**{k: getattr(cfg, k) for k in HYPERPARAMETERS}, seed=seed,
                  adversary_classes=targets(cfg, data).adversary_classes)


def evaluate(scorer: Scorer, cfg: Config, data: Data, layer: str, part: str, seed: int) -> dict[str, Any]:
    t = targets(cfg, data)
    rows, train = data.part(part), data.part("train")
    X = data.features(layer)
    raw = scorer.predict_raw(X[rows])
    key, groups = t.key[rows], t.groups[rows]
    out: dict[str, Any] = {"n": int(rows.sum()), "groups": int(len(np.unique(groups)))}
    if t.score is not None or cfg.group == "none":  # one scale across groups: overall agreement means something
        out["spearman"] = float(rm.stats.spearmanr(raw, key).statistic)
        out["kendall"] = float(rm.stats.kendalltau(raw, key).statistic)
    out["spearman_group"] = rm.group_spearman(raw, key, groups)[0]
    out.update(rm.within_groups(raw, key, groups, cfg.ndcg_k, np.random.default_rng(seed)))
    if t.score is not None:
        calibrated = scorer.calibrate(raw)
        out.update(rm.errors(calibrated, t.score[rows], cfg.bands))
        if t.speakers is not None:
            out["system_spearman"] = rm.system_spearman(calibrated, t.score[rows], t.speakers[rows])
        out["points"] = rm.points(calibrated, t.score[rows], seed)
    if t.speakers is not None:
        hidden = rm.speaker_probe(scorer.hidden_layer(X[train]), t.speakers[train], scorer.hidden_layer(X[rows]),
                                  t.speakers[rows], seed)
        features = rm.speaker_probe(X[train], t.speakers[train], X[rows], t.speakers[rows], seed)
        if hidden:
            out.update(hidden)
            out["speaker_probe_features_accuracy"] = features["speaker_probe_accuracy"]
    return out


def _predictions_writer(scorer: Scorer, cfg: Config, data: Data, layer: str):  # noqa: ANN202
    t = targets(cfg, data)
    raw = scorer.predict_raw(data.features(layer))

    def write(path: Path) -> None:
        table = pa.table({
            "track_id": pa.array(data.track_ids, pa.string()), "split": pa.array(data.split, pa.string()),
            "group": pa.array(t.group_names[t.groups], pa.string()),
            "score": pa.array(t.score, pa.float64()) if t.score is not None else pa.nulls(len(raw), pa.float64()),
            "raw": pa.array(raw, pa.float64()), "calibrated": pa.array(scorer.calibrate(raw), pa.float64()),
        })
        pq.write_table(table, path, compression="zstd")
    return write


def train(cfg: Config, data: Data, seed: int) -> Trained:
    """One scorer per entry of `data.layers`; the best on val (within-group Spearman) is reported."""
    t = targets(cfg, data)
    train_rows, val_rows = data.part("train"), data.part("val")
    fitted: dict[str, Scorer] = {}
    for layer in data.layers:
        X = data.features(layer)
        fitted[layer] = build(cfg, seed, data).fit(
            X[train_rows], t.key[train_rows], t.groups[train_rows], X[val_rows], t.key[val_rows], t.groups[val_rows],
            score=t.score[train_rows] if t.score is not None else None,
            adversary=t.adversary[train_rows] if t.adversary is not None else None)
    layer = max(data.layers, key=lambda name: fitted[name].best_score_["val_spearman_group"])
    scorer = fitted[layer]
    out: dict[str, Any] = {"layer": layer, "best_epoch": scorer.best_epoch_, "epochs_run": scorer.epochs_run_}
    for part in data.parts():
        if part != "train":
            out[part] = evaluate(scorer, cfg, data, layer, part, seed)
    notes = [f"NDCG@{cfg.ndcg_k}; ranking metrics on the raw output, MAE and bands after isotonic calibration on train"]
    if len(data.layers) > 1:
        out["layers"] = {name: dict(s.best_score_) for name, s in fitted.items()}
        notes.append(f"layer=all: {len(data.layers)} layers tried; {layer} is best on val")
    checkpoint = {**scorer.checkpoint(), "config": asdict(cfg), "layer": layer, "layer_of": data.layer_of[layer],
                  "bands": list(cfg.bands)}
    return Trained(scorer, out, checkpoint, layer, notes,
                   artifacts={"predictions.parquet": _predictions_writer(scorer, cfg, data, layer)})


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    cfg = data.selection
    parts_ = [p for p in ("val", "test") if p in result and "points" in result[p]]
    if not parts_:
        return []
    part = parts_[-1]
    title = f"{'+'.join(cfg.backbone)} · {result['layer']} · {cfg.target} · {part} · {result.get('variant', '')}"
    return [rm.scatter_png(result, part, cfg.bands, folder / f"scatter-{part}.png", title),
            rm.bands_png(result, parts_, folder / "bands.png", f"{'+'.join(cfg.backbone)} · MAE per true score band")]
