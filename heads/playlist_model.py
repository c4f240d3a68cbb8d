"""Title → semantic-ID tokens with a T5 (seed 004, stage 3), decoded through a prefix trie.

One vocabulary serves both sides (T5 shares its embedding): pad, eos, unk, the title tokens
(a BPE trained on the training titles with `tokenizers`, when no pretrained T5 is given), then
one token per (level, code): `<c0_17>` is code 17 at level 0. A playlist's target is its songs'
IDs in playlist order, L tokens each, then eos; an ID that several of its songs share appears
that many times, so the model learns which clusters weigh most (the seed's intent).

`IdTrie` holds every existing ID as a path of tokens; `allowed(prefix)` is what
`prefix_allowed_tokens_fn` returns, so beam search can only spell IDs that exist (or stop at
an ID boundary).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import T5Config, T5ForConditionalGeneration

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def code_token(level: int, code: int) -> str:
    return f"<c{level}_{code}>"


def train_tokenizer(titles: list[str], codes: tuple[int, ...], vocab_size: int) -> Tokenizer:
    """A BPE on the titles; pad=0, eos=1, unk=2; the code tokens are special (never split)."""
    specials = [PAD, EOS, UNK] + [code_token(level, c) for level, k in enumerate(codes) for c in range(k)]
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits()])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + len(specials), special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(titles, trainer)
    return tokenizer


@dataclass
class Vocabulary:
    tokenizer: Tokenizer
    codes: tuple[int, ...]

    @property
    def levels(self) -> int:
        return len(self.codes)

    @property
    def size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def eos(self) -> int:
        return self.tokenizer.token_to_id(EOS)

    def code_ids(self) -> list[np.ndarray]:
        """Per level: code → token id."""
        return [np.array([self.tokenizer.token_to_id(code_token(level, c)) for c in range(k)])
                for level, k in enumerate(self.codes)]

    def encode_titles(self, titles: list[str], max_len: int) -> list[list[int]]:
        return [e.ids[:max_len - 1] + [self.eos()] for e in self.tokenizer.encode_batch(list(titles))]

    def target(self, ids: np.ndarray, max_ids: int) -> list[int]:
        """[n_songs, levels] codes → tokens (at most max_ids IDs) + eos."""
        lookup = self.code_ids()
        tokens = [int(lookup[level][code]) for row in ids[:max_ids] for level, code in enumerate(row)]
        return tokens + [self.eos()]

    def decode_ids(self, tokens: list[int]) -> list[tuple[int, ...]]:
        """Generated tokens → IDs (complete ones only; anything else is an invalid token)."""
        reverse = {int(t): (level, c) for level, table in enumerate(self.code_ids()) for c, t in enumerate(table)}
        out, current = [], []
        for t in tokens:
            if t in (0, self.eos()):
                if t == self.eos():
                    break
                continue
            level_code = reverse.get(int(t))
            if level_code is None or level_code[0] != len(current):
                out.append(None)  # not an ID token at this position: counted as invalid
                current = []
                continue
            current.append(level_code[1])
            if len(current) == self.levels:
                out.append(tuple(current))
                current = []
        return out


class IdTrie:
    """Every existing ID as a path of tokens from the root."""

    def __init__(self, ids: np.ndarray, vocab: Vocabulary):
        lookup = vocab.code_ids()
        self.levels = vocab.levels
        self.eos = vocab.eos()
        self.children: dict[tuple[int, ...], list[int]] = {}
        for row in np.unique(np.asarray(ids), axis=0):
            path = tuple(int(lookup[level][c]) for level, c in enumerate(row))
            for depth in range(self.levels):
                self.children.setdefault(path[:depth], [])
                if path[depth] not in self.children[path[:depth]]:
                    self.children[path[:depth]].append(path[depth])

    def allowed(self, generated: list[int]) -> list[int]:
        """Next tokens after `generated` (without the decoder start token)."""
        depth = len(generated) % self.levels
        prefix = tuple(generated[len(generated) - depth:]) if depth else ()
        nxt = list(self.children.get(prefix, []))
        return nxt + [self.eos] if depth == 0 else (nxt or [self.eos])

    def paths(self) -> set[tuple[int, ...]]:
        """Every complete path (for tests: exactly the IDs given)."""
        out, stack = set(), [()]
        while stack:
            prefix = stack.pop()
            if len(prefix) == self.levels:
                out.add(prefix)
                continue
            stack += [prefix + (t,) for t in self.children.get(prefix, [])]
        return out


def small_t5(vocab_size: int, d_model: int, layers: int, heads: int, seed: int) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // heads, d_ff=d_model * 2,
                      num_layers=layers, num_decoder_layers=layers, num_heads=heads, dropout_rate=0.1,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=True)
    return T5ForConditionalGeneration(config)


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def fit(model: T5ForConditionalGeneration, inputs: list[list[int]], targets: list[list[int]], epochs: int,
        batch: int, lr: float, seed: int) -> list[float]:
    """Teacher-forced cross-entropy; returns the mean loss per epoch."""
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        order, total = rng.permutation(len(inputs)), 0.0
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            x = _pad([inputs[i] for i in rows], 0)
            labels = _pad([targets[i] for i in rows], -100)
            loss = model(input_ids=x, attention_mask=(x != 0).long(), labels=labels).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(inputs))
    model.eval()
    return losses


@torch.no_grad()
def generate(model: T5ForConditionalGeneration, inputs: list[list[int]], trie: IdTrie | None, beams: int,
             max_ids: int, levels: int, batch: int = 64) -> list[list[int]]:
    """The best beam's tokens per input (without the decoder start token)."""
    out = []
    fn = (lambda _, ids: trie.allowed(ids[1:].tolist())) if trie is not None else None
    for start in range(0, len(inputs), batch):
        x = _pad(inputs[start:start + batch], 0)
        seqs = model.generate(input_ids=x, attention_mask=(x != 0).long(), num_beams=beams, do_sample=False,
                              max_new_tokens=max_ids * levels + 1, prefix_allowed_tokens_fn=fn,
                              decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        out += [row[1:].tolist() for row in seqs]
    return out
