"""Title → semantic-ID tokens with a T5 (seed 004, stage 3), decoded through a prefix trie.

One vocabulary serves both sides (T5 shares its embedding): pad, eos, unk, the title tokens
(a BPE trained on the training titles with `tokenizers`, when no pretrained T5 is given, or
the pretrained T5's own tokenizer), then one token per (level, code): `<c0_17>` is code 17 at
level 0, added to either. A playlist's target is its songs'
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
from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

from lake.errors import one_line

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

    def pad(self) -> int:
        return self.tokenizer.token_to_id(PAD)

    def code_ids(self) -> list[np.ndarray]:
        """Per level: code → token id."""
        return [np.array([self.tokenizer.token_to_id(code_token(level, c)) for c in range(k)])
                for level, k in enumerate(self.codes)]

    def encode_titles(self, titles: list[str], max_len: int) -> list[list[int]]:
        # without the tokenizer's own post-processing: a pretrained T5's appends eos itself
        encoded = self.tokenizer.encode_batch(list(titles), add_special_tokens=False)
        return [e.ids[:max_len - 1] + [self.eos()] for e in encoded]

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
            if t in (self.pad(), self.eos()):
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
    """Every existing ID as a path of tokens from the root. With `songs` (each ID's cluster size),
    an ID may appear in one sequence at most as many times as its cluster has songs: repeats
    still weigh a cluster (seed 004), but never ask for more songs than it holds."""

    def __init__(self, ids: np.ndarray, vocab: Vocabulary, songs: np.ndarray | None = None):
        lookup = vocab.code_ids()
        self.levels = vocab.levels
        self.eos = vocab.eos()
        self.children: dict[tuple[int, ...], list[int]] = {}
        self.capacity: dict[tuple[int, ...], int] | None = None if songs is None else {}
        ids = np.asarray(ids)
        songs = np.ones(len(ids), np.int64) if songs is None else np.asarray(songs)
        for row, count in zip(ids, songs):
            path = tuple(int(lookup[level][c]) for level, c in enumerate(row))
            for depth in range(self.levels):
                self.children.setdefault(path[:depth], [])
                if path[depth] not in self.children[path[:depth]]:
                    self.children[path[:depth]].append(path[depth])
                if self.capacity is not None:  # songs under each prefix
                    self.capacity[path[:depth + 1]] = self.capacity.get(path[:depth + 1], 0) + int(count)

    def allowed(self, generated: list[int]) -> list[int]:
        """Next tokens after `generated` (without the decoder start token)."""
        depth = len(generated) % self.levels
        prefix = tuple(generated[len(generated) - depth:]) if depth else ()
        nxt = list(self.children.get(prefix, []))
        if self.capacity is not None and nxt:
            used = self._used(generated[:len(generated) - depth])
            nxt = [t for t in nxt if self.capacity.get(prefix + (t,), 0) > used.get(prefix + (t,), 0)]
        return nxt + [self.eos] if depth == 0 else (nxt or [self.eos])

    def _used(self, complete: list[int]) -> dict[tuple[int, ...], int]:
        """How many of the complete IDs generated so far lie under each prefix."""
        used: dict[tuple[int, ...], int] = {}
        for start in range(0, len(complete), self.levels):
            path = tuple(complete[start:start + self.levels])
            for depth in range(1, self.levels + 1):
                used[path[:depth]] = used.get(path[:depth], 0) + 1
        return used

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


def pretrained_t5(target: str, codes: tuple[int, ...]) -> tuple[T5ForConditionalGeneration, Tokenizer]:
    """A pretrained T5 (hub id or local dir) and its fast tokenizer with one token per (level,
    code) added, the embeddings resized to hold them. The tokenizer must spell pad and eos as T5
    does (`<pad>`, `</s>`) with the ids the model's config uses."""
    from transformers import AutoTokenizer

    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(target)
        model = T5ForConditionalGeneration.from_pretrained(target)
    except (OSError, ValueError) as err:  # not a T5 dir, not cached offline, no such hub id
        raise ValueError(f"model={target}: cannot load a T5 and its tokenizer: {one_line(err)}") from None
    if not hf_tokenizer.is_fast:
        raise ValueError(f"model={target}: its tokenizer has no fast (tokenizers) version, which this head needs")
    tokenizer = hf_tokenizer.backend_tokenizer
    for token, wanted in ((PAD, model.config.pad_token_id), (EOS, model.config.eos_token_id)):
        if tokenizer.token_to_id(token) != wanted:
            raise ValueError(f"model={target}: its tokenizer's {token} is id {tokenizer.token_to_id(token)}, "
                             f"its config says {wanted}")
    hf_tokenizer.add_tokens([code_token(level, c) for level, k in enumerate(codes) for c in range(k)],
                            special_tokens=True)
    rows = model.get_input_embeddings().num_embeddings
    if tokenizer.get_vocab_size() > rows:  # t5-small already has 28 spare rows past its 32,100 tokens
        # Plain init, not the mean of the old rows: the ID tokens are new output classes, and
        # (tied embeddings) rows drawn near one mean start as one class (loss 2.05 vs 0.72 on the toy).
        model.resize_token_embeddings(tokenizer.get_vocab_size(), mean_resizing=False)
    return model, tokenizer


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def fit(model: T5ForConditionalGeneration, inputs: list[list[int]], targets: list[list[int]], epochs: int,
        batch: int, lr: float, seed: int) -> list[float]:
    """Teacher-forced cross-entropy; returns the mean loss per epoch."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # dropout
    pad = model.config.pad_token_id
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        order, total = rng.permutation(len(inputs)), 0.0
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            x = _pad([inputs[i] for i in rows], pad)
            labels = _pad([targets[i] for i in rows], -100)
            loss = model(input_ids=x, attention_mask=(x != pad).long(), labels=labels).loss
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
    config = model.config
    # every setting given, none taken from a pretrained checkpoint's generation defaults
    settings = GenerationConfig(num_beams=beams, do_sample=False, max_new_tokens=max_ids * levels + 1,
                                decoder_start_token_id=config.decoder_start_token_id,
                                pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id)
    for start in range(0, len(inputs), batch):
        x = _pad(inputs[start:start + batch], config.pad_token_id)
        seqs = model.generate(input_ids=x, attention_mask=(x != config.pad_token_id).long(),
                              generation_config=settings, prefix_allowed_tokens_fn=fn)
        out += [row[1:].tolist() for row in seqs]
    return out
