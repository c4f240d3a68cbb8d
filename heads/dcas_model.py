"""The DCAS network and its losses (seed 000's model, with the adversary's sign done right).

A track vector (standardised) is encoded into three Gaussian factors — content `zc`, cultural
style `zs`, affect / listening intent `za` — and decoded from all three (MSE + β·KL). On top:

- culture classifier on `zs` (so culture centroids in `zs` mean something);
- culture adversary on `za` through heads.ranking.reverse_gradient, scaled by adv_weight ·
  Ganin's λ(p): its loss is ADDED, so the adversary learns culture while the encoder unlearns it;
  a second one against the data source (the head's `source=` column) when given, the same way;
- InfoNCE on `zc` between a track and a noise-augmented copy (content survives small noise);
- decorrelation between the factors: squared off-diagonal cross-covariance and a (linear-time
  per batch) RBF HSIC for each factor pair, and the Gaussian total correlation of (zc, zs, za);
- affect classifier on `za` when `affect_label` exists;
- co-listening ranking loss on `za` (tracks a user played together are closer than a track of
  the same culture the user did not play), switched on after `rank_start` of training, so `za`
  carries listening intent and not only reconstruction.

Regularisers warm up linearly over `warmup` of training. `ablate` switches parts off: adv (no
adversaries, culture nor source), disentangle (no InfoNCE, decorrelation, total correlation or
culture classifier), ot (recommend by the kNN variant; the network is unchanged).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from heads import lbfgs
from heads.ranking import ganin_lambda, reverse_gradient


@dataclass
class Weights:
    beta: float = 0.01          # KL
    culture: float = 1.0        # culture classifier on zs
    adv: float = 1.0            # adversary on za (times λ(p))
    infonce: float = 0.5
    decor: float = 1.0          # off-diagonal covariance + HSIC
    tc: float = 0.1             # Gaussian total correlation between zc, zs, za
    affect: float = 1.0
    rank: float = 1.0


class DCASNet(nn.Module):
    def __init__(self, dim: int, hidden: int, z: int, cultures: int, affects: int, sources: int = 0) -> None:
        super().__init__()
        self.z = z
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_stats = nn.Linear(hidden, 6 * z)   # mean and log-variance of zc, zs, za
        self.decoder = nn.Sequential(nn.Linear(3 * z, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.culture = nn.Linear(z, cultures)
        self.adversary = nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, cultures))
        self.affect = nn.Linear(z, affects) if affects > 1 else None
        # the data source (dataset / collection a track came from) must not be readable off za either
        self.source_adversary = (nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, sources))
                                 if sources > 1 else None)

    def adversaries(self) -> list[tuple[str, nn.Module]]:
        """(label name, discriminator on za) of each adversary this network has."""
        return [("culture", self.adversary)] + ([("source", self.source_adversary)] if self.source_adversary else [])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.to_stats(self.encoder(x))
        mean, logvar = stats[:, :3 * self.z], stats[:, 3 * self.z:].clamp(-8, 8)
        return mean, logvar

    def factors(self, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return mean[:, :self.z], mean[:, self.z:2 * self.z], mean[:, 2 * self.z:]


def off_diagonal_cov(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared cross-covariance between two factors (all entries are off the joint diagonal)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    return ((a.T @ b) / max(len(a) - 1, 1)).pow(2).mean()


def hsic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Biased HSIC with RBF kernels, bandwidth the median pairwise distance (0 iff independent)."""
    n = len(a)
    if n < 4:
        return a.sum() * 0.0

    def kernel(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x).pow(2)
        scale = d.detach()[d.detach() > 0].median() if (d.detach() > 0).any() else torch.tensor(1.0)
        return torch.exp(-d / scale)

    center = torch.eye(n) - 1.0 / n
    return torch.trace(kernel(a) @ center @ kernel(b) @ center) / (n - 1) ** 2


def gaussian_total_correlation(blocks: list[torch.Tensor], ridge: float = 1e-4) -> torch.Tensor:
    """Total correlation between groups of columns under a Gaussian fit of the batch:
    ½(Σ_g log det Σ_g − log det Σ), Σ the joint covariance and Σ_g its diagonal blocks (one column
    per group: ½(Σ log var_i − log det Σ)). 0 iff the groups are uncorrelated; unlike the
    cross-covariance it is scale-free, so shrinking a factor cannot hide its dependence.
    A small ridge (relative to the mean variance) keeps log det finite for a collapsed batch."""
    joint = torch.cat(blocks, 1)
    joint = joint - joint.mean(0)
    cov = joint.T @ joint / max(len(joint) - 1, 1)
    cov = cov + ridge * cov.diagonal().mean().clamp_min(1e-8) * torch.eye(len(cov), dtype=cov.dtype)
    out = -torch.logdet(cov)
    start = 0
    for block in blocks:
        width = block.shape[1]
        out = out + torch.logdet(cov[start:start + width, start:start + width])
        start += width
    return 0.5 * out


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(a)))


def kl_gaussian(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


def ramp(progress: float, warmup: float) -> float:
    return 1.0 if warmup <= 0 else min(1.0, progress / warmup)


def adversary_term(head: nn.Module, za: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """A discriminator's cross-entropy on za through gradient reversal (its loss is ADDED: the
    discriminator learns the label while the encoder unlearns it)."""
    known = labels >= 0
    with torch.no_grad():
        current = F.cross_entropy(head(za[known]), labels[known])
    # Past chance-level loss the discriminator is confidently WRONG, which still reads the label off
    # za (relabelled): the encoder stops pushing there, and only the discriminator keeps learning.
    chance = math.log(head[-1].out_features)
    return F.cross_entropy(head(reverse_gradient(za[known], scale if current < chance else 0.0)), labels[known])


def losses(net: DCASNet, x: torch.Tensor, culture: torch.Tensor, affect: torch.Tensor | None, progress: float,
           w: Weights, ablate: frozenset[str], warmup: float, noise: float,
           source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each loss term of one batch (already weighted); their sum is what the optimiser descends."""
    mean, logvar = net.encode(x)
    z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    recon = net.decoder(z)
    zc, zs, za = net.factors(mean)
    warm = ramp(progress, warmup)
    out = {"recon": F.mse_loss(recon, x), "kl": w.beta * warm * kl_gaussian(mean, logvar)}
    known = culture >= 0
    if "disentangle" not in ablate and known.any():
        out["culture"] = w.culture * F.cross_entropy(net.culture(zs[known]), culture[known])
    if "adv" not in ablate:
        for name, labels in (("adversary", culture), ("source_adversary", source)):
            head = net.adversary if name == "adversary" else net.source_adversary
            if head is not None and labels is not None and (labels >= 0).any():
                out[name] = adversary_term(head, za, labels, w.adv * ganin_lambda(progress))
    if "disentangle" not in ablate:
        noisy_zc = net.factors(net.encode(x + noise * torch.randn_like(x))[0])[0]
        out["infonce"] = w.infonce * warm * info_nce(zc, noisy_zc)
        pairs = ((zc, zs), (zc, za), (zs, za))
        out["decor"] = w.decor * warm * sum(off_diagonal_cov(a, b) + hsic(a, b) for a, b in pairs)
        if len(x) > 3 * zc.shape[1]:  # fewer rows than 3z: the batch covariance is singular, TC meaningless
            out["total_correlation"] = w.tc * warm * gaussian_total_correlation([zc, zs, za])
    if affect is not None and net.affect is not None and (affect >= 0).any():
        out["affect"] = w.affect * F.cross_entropy(net.affect(za[affect >= 0]), affect[affect >= 0])
    return out


def co_listening(net: DCASNet, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """BPR on −‖za_a − za_p‖² vs −‖za_a − za_n‖²: the same distance the OT cost uses."""
    za = lambda x: net.factors(net.encode(x)[0])[2]  # noqa: E731
    a, p, n = za(anchors), za(positives), za(negatives)
    return F.softplus((a - p).pow(2).sum(1) - (a - n).pow(2).sum(1)).mean()


def co_listening_pairs(user: np.ndarray, track: np.ndarray, culture: np.ndarray, count: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` (anchor, positive, negative) track rows: anchor and positive from one user's train
    history, the negative a random track of the positive's culture (a same-culture hard negative)."""
    order = np.argsort(user, kind="stable")
    user, track = user[order], track[order]
    starts = np.searchsorted(user, user)
    ends = np.searchsorted(user, user, side="right")
    pick = rng.integers(0, len(user), size=count)
    other = starts[pick] + (rng.random(count) * (ends[pick] - starts[pick])).astype(np.int64)
    anchors, positives = track[pick], track[other]
    negatives = rng.integers(0, len(culture), size=count)
    by_culture = {c: np.flatnonzero(culture == c) for c in np.unique(culture)}
    for c, rows in by_culture.items():
        mine = culture[positives] == c
        negatives[mine] = rows[rng.integers(0, len(rows), size=int(mine.sum()))]
    return anchors, positives, negatives


class DCAS:
    """The estimator: hyperparameters and vocabularies in the constructor, learned state ends in `_`."""

    def __init__(self, cultures: list[str], affects: list[str], hidden: int = 128, z: int = 16, epochs: int = 60,
                 batch: int = 256, lr: float = 2e-3, weights: Weights | None = None, ablate: frozenset[str] = frozenset(),
                 warmup: float = 0.3, rank_start: float = 0.3, noise: float = 0.1, adv_steps: int = 3,
                 seed: int = 0, sources: list[str] | None = None) -> None:
        self.adv_steps = adv_steps
        self.cultures, self.affects, self.sources = cultures, affects, list(sources or [])
        self.hidden, self.z, self.epochs, self.batch, self.lr = hidden, z, epochs, batch, lr
        self.weights = weights or Weights()
        self.ablate, self.warmup, self.rank_start, self.noise, self.seed = frozenset(ablate), warmup, rank_start, noise, seed

    def _standardise(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((X - self.mean_) / self.std_).astype(np.float32))

    def fit(self, X: np.ndarray, culture: np.ndarray, affect: np.ndarray | None,
            user: np.ndarray, track: np.ndarray, source: np.ndarray | None = None) -> DCAS:
        """X: every track's vector; culture/affect/source: class index per track (-1 unknown);
        user/track: train interactions (rows into X) for the co-listening loss."""
        before = torch.get_num_threads()
        if self.batch * X.shape[1] < lbfgs.SMALL:
            torch.set_num_threads(1)  # small steps: thread hand-offs cost more than they save
        try:
            return self._fit(X, culture, affect, user, track, source)
        finally:
            torch.set_num_threads(before)

    def _fit(self, X: np.ndarray, culture: np.ndarray, affect: np.ndarray | None,
             user: np.ndarray, track: np.ndarray, source: np.ndarray | None) -> DCAS:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.mean_ = X.mean(0)
        self.std_ = np.where(X.std(0) > 1e-6, X.std(0), 1.0)
        x = self._standardise(X)
        c = torch.from_numpy(culture.astype(np.int64))
        a = torch.from_numpy(affect.astype(np.int64)) if affect is not None else None
        src = torch.from_numpy(source.astype(np.int64)) if source is not None and len(self.sources) > 1 else None
        self.net_ = DCASNet(X.shape[1], self.hidden, self.z, max(len(self.cultures), 2), len(self.affects),
                            len(self.sources) if src is not None else 0)
        adversary = [p for _, head in self.net_.adversaries() for p in head.parameters()]
        rest = [p for p in self.net_.parameters() if all(p is not q for q in adversary)]
        # the adversary learns faster than what it reads, so its gradient stays informative
        optimiser = torch.optim.AdamW([{"params": rest}, {"params": adversary, "lr": self.lr * 5}], lr=self.lr)
        adversary_optimiser = torch.optim.AdamW(adversary, lr=self.lr * 5)
        steps_per_epoch = max(1, -(-len(X) // self.batch))
        total = self.epochs * steps_per_epoch
        self.history_ = []
        step = 0
        for epoch in range(self.epochs):
            order = rng.permutation(len(X))
            sums: dict[str, float] = {}
            for start in range(0, len(X), self.batch):
                rows = torch.from_numpy(order[start:start + self.batch])
                progress = step / max(total - 1, 1)
                terms = losses(self.net_, x[rows], c[rows], a[rows] if a is not None else None, progress,
                               self.weights, self.ablate, self.warmup, self.noise,
                               src[rows] if src is not None else None)
                if len(user) and progress >= self.rank_start and self.weights.rank > 0:
                    anc, pos, neg = co_listening_pairs(user, track, culture, len(rows), rng)
                    terms["rank"] = self.weights.rank * co_listening(self.net_, x[anc], x[pos], x[neg])
                loss = sum(terms.values())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if "adv" not in self.ablate:
                    self._catch_up(x[rows], {"culture": c[rows], "source": src[rows] if src is not None else None},
                                   adversary_optimiser)
                step += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            self.history_.append({k: v / steps_per_epoch for k, v in sums.items()})
        return self

    def _catch_up(self, x: torch.Tensor, labels: dict[str, torch.Tensor | None],
                  optimiser: torch.optim.Optimizer) -> None:
        """Extra discriminator-only steps on the current za: a GRL adversary that lags behind the
        encoder is beaten by anti-predicting (culture stays readable, just relabelled); one near its
        optimum only loses to za that truly carries no culture (or source)."""
        with torch.no_grad():
            za = self.net_.factors(self.net_.encode(x)[0])[2]
        heads = [(head, labels[name]) for name, head in self.net_.adversaries()
                 if labels.get(name) is not None and (labels[name] >= 0).any()]
        if not heads:
            return
        for _ in range(self.adv_steps):
            loss = sum(F.cross_entropy(head(za[y >= 0]), y[y >= 0]) for head, y in heads)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    def factors(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The posterior means of zc, zs, za for every row of X."""
        with torch.no_grad():
            mean, _ = self.net_.encode(self._standardise(X))
        zc, zs, za = (f.numpy().astype(np.float64) for f in self.net_.factors(mean))
        return {"zc": zc, "zs": zs, "za": za}

    def checkpoint(self) -> dict:
        return {"state": self.net_.state_dict(), "mean": self.mean_, "std": self.std_, "cultures": self.cultures,
                "affects": self.affects, "sources": self.sources, "hidden": self.hidden, "z": self.z,
                "ablate": sorted(self.ablate)}
