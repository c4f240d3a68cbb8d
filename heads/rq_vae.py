"""RQ-VAE: an MLP autoencoder whose latent is residual-quantised (seed 004's first method).

    vae = RQVAE(codes=(256, 256, 256), seed=0).fit(X, rows)
    codes = vae.encode(X, stats, rows)

Encoder d → hidden → latent, decoder back; the latent is quantised level by level on the
residuals (nearest codeword), the decoder reads the quantised latent through a
straight-through estimator. Loss: reconstruction MSE + codebook loss ‖sg(r) − c‖² + β·‖r −
sg(c)‖² (the commitment loss) per level. Codebooks start as residual k-means of the untrained
encoder's latents (heads/rq_kmeans.py); after each epoch a code no batch chose is reset to a
random residual of the last batch (dead-code reset). `LevelStats` here measure the latent:
‖z − ẑ‖²/‖z‖² after each level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from heads.rq_kmeans import CHUNK, LevelStats, RQKMeans


@dataclass
class RQVAE:
    codes: tuple[int, ...] = (256, 256, 256)
    seed: int = 0
    hidden: int = 256
    latent: int = 64
    epochs: int = 20
    batch: int = 1024
    lr: float = 1e-3
    beta: float = 0.25
    train_points: int = 262144

    def __post_init__(self) -> None:
        self.codes = tuple(int(k) for k in self.codes)

    def _nets(self, dim: int) -> None:
        torch.manual_seed(self.seed)
        self.encoder_ = nn.Sequential(nn.Linear(dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.latent))
        self.decoder_ = nn.Sequential(nn.Linear(self.latent, self.hidden), nn.ReLU(), nn.Linear(self.hidden, dim))

    def _quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        residual, quantised, loss, chosen, residuals = z, torch.zeros_like(z), z.new_zeros(()), [], []
        for book in self.codebooks_:
            code = torch.cdist(residual.detach(), book.detach()).argmin(dim=1)
            word = book[code]
            loss = loss + ((residual.detach() - word) ** 2).mean() + self.beta * ((residual - word.detach()) ** 2).mean()
            quantised = quantised + word
            residuals.append(residual.detach())
            residual = residual - word.detach()
            chosen.append(code)
        return quantised, chosen, loss, residuals

    def fit(self, X: np.ndarray, rows: np.ndarray | None = None) -> "RQVAE":
        torch.set_num_threads(1)
        rng = np.random.default_rng(self.seed)
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        if 0 < self.train_points < len(rows):
            rows = np.sort(rng.choice(rows, self.train_points, replace=False))
        sample = torch.from_numpy(np.array(X[rows], dtype=np.float32))
        self.mean_, self.scale_ = sample.mean(0), sample.std(0) + 1e-6
        sample = (sample - self.mean_) / self.scale_
        self._nets(sample.shape[1])
        with torch.no_grad():
            start = RQKMeans(self.codes, seed=self.seed, niter=10).fit(self.encoder_(sample).numpy())
        self.codebooks_ = nn.ParameterList([nn.Parameter(torch.from_numpy(c).clone()) for c in start.centroids_])
        params = [*self.encoder_.parameters(), *self.decoder_.parameters(), *self.codebooks_.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.lr)
        self.losses_ = []
        for _ in range(self.epochs):
            used = [torch.zeros(len(b), dtype=torch.bool) for b in self.codebooks_]
            total = 0.0
            for batch in torch.from_numpy(rng.permutation(len(sample))).split(self.batch):
                x = sample[batch]
                z = self.encoder_(x)
                quantised, chosen, vq_loss, residuals = self._quantise(z)
                x_hat = self.decoder_(z + (quantised - z).detach())
                loss = ((x_hat - x) ** 2).mean() + vq_loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
                for level, code in enumerate(chosen):
                    used[level][code] = True
            self.losses_.append(total / len(sample))
            self._reset_dead(used, residuals, rng)
        return self

    @torch.no_grad()
    def _reset_dead(self, used: list[torch.Tensor], residuals: list[torch.Tensor], rng: np.random.Generator) -> None:
        for level, (book, alive) in enumerate(zip(self.codebooks_, used)):
            dead = torch.nonzero(~alive).flatten()
            if len(dead):
                pick = torch.from_numpy(rng.integers(len(residuals[level]), size=len(dead)))
                book[dead] = residuals[level][pick]

    @torch.no_grad()
    def encode(self, X: np.ndarray, stats: LevelStats | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        out = np.empty((len(rows), len(self.codebooks_)), np.int32)
        for start in range(0, len(rows), CHUNK):
            x = (torch.from_numpy(np.array(X[rows[start:start + CHUNK]], dtype=np.float32)) - self.mean_) / self.scale_
            z = self.encoder_(x)
            energy = float((z ** 2).sum())
            residual = z
            for level, book in enumerate(self.codebooks_):
                code = torch.cdist(residual, book).argmin(dim=1)
                residual = residual - book[code]
                out[start:start + len(x), level] = code.numpy()
                if stats is not None:
                    stats.add(level, code.numpy(), float((residual ** 2).sum()), energy)
        return out

    def checkpoint(self) -> dict:
        return {"codes": list(self.codes), "seed": self.seed, "encoder": self.encoder_.state_dict(),
                "decoder": self.decoder_.state_dict(), "codebooks": [b.detach().clone() for b in self.codebooks_],
                "mean": self.mean_, "scale": self.scale_}
