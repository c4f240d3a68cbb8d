"""The demo source: contract, determinism, and that every column is learnable from the audio."""
from __future__ import annotations

import io
import re
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import soundfile as sf

from ingest import demo
from ingest.demo_synth import AFFECTS, CULTURES, LABELS
from ingest.source import KNOWN_META, SourceItem

META_KEYS = {"culture", "label", "affect_label", "speaker_id", "group_id", "score", "rank",
             "title", "text", "terms"}
SINGING_KEYS = ("speaker_id", "group_id", "score", "rank")


def _decode(item: SourceItem) -> tuple[np.ndarray, int]:
    y, sr = sf.read(io.BytesIO(item.read()), dtype="float32", always_2d=True)
    return y, sr


# ------------------------------------------------------------------ contract


def test_config_and_fingerprint():
    cfg = demo.Config()
    assert (cfg.n, cfg.seed, cfg.sample_rate, cfg.duration_s, cfg.format) == (480, 0, 22050, 6.0, "wav")
    assert demo.count(cfg) == 480
    fp = demo.fingerprint(cfg)
    assert re.fullmatch(r"[0-9a-f]{64}", fp) and fp == demo.fingerprint(demo.Config())
    others = [demo.Config(seed=1), demo.Config(n=10), demo.Config(format="flac"), demo.Config(duration_s=3.0)]
    assert len({fp, *map(demo.fingerprint, others)}) == 5
    with pytest.raises(ValueError):
        demo.Config(format="mp3")
    with pytest.raises(ValueError):
        demo.Config(n=-1)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_items_follow_the_contract(fmt):
    cfg = demo.Config(n=30, duration_s=2.0, format=fmt, seed=3)
    got = list(demo.items(cfg))
    assert len(got) == 30
    ids = [it.track_id for it in got]
    assert len(set(ids)) == 30 and all(re.fullmatch(r"demo_\d{6}", t) for t in ids)
    for i, it in enumerate(got):
        assert isinstance(it, SourceItem) and it.format == fmt and it.path is None
        assert it.source == f"demo:seed=3/{i}"
        m = it.meta
        assert set(m) == META_KEYS and set(m) <= set(KNOWN_META)
        assert m["culture"] in CULTURES and m["label"] in LABELS and m["affect_label"] in AFFECTS
        for key in ("title", "text"):
            assert isinstance(m[key], str) and m[key].strip() and m[key] == m[key].strip()
        assert isinstance(m["terms"], list) and 1 <= len(m["terms"]) <= 3
        assert all(t in demo.GLOSSARY for t in m["terms"]) and len(set(m["terms"])) == len(m["terms"])
        singing = m["speaker_id"] is not None
        assert all((m[k] is not None) == singing for k in SINGING_KEYS)  # None, never "" or NaN
        if singing:
            assert re.fullmatch(r"singer_\d{2}", m["speaker_id"]) and isinstance(m["group_id"], str)
            assert isinstance(m["score"], float) and 0.0 <= m["score"] <= 100.0
            assert isinstance(m["rank"], int) and 1 <= m["rank"] <= 6
        y, sr = _decode(it)
        assert sr == 22050 and y.shape == (44100, 1)  # mono, exactly the stated duration
        assert np.isfinite(y).all() and np.abs(y).max() <= 0.99  # headroom: nothing clips
        assert -35.0 < 20 * np.log10(np.sqrt(np.mean(y ** 2))) < -10.0


def test_deterministic_and_random_access():
    cfg = demo.Config(n=12, duration_s=1.5, seed=7)
    a, b = list(demo.items(cfg)), list(demo.items(cfg))
    assert [x.data for x in a] == [x.data for x in b] and [x.meta for x in a] == [x.meta for x in b]
    lone = demo.item(cfg, 9)  # any clip can be generated alone
    assert lone.data == a[9].data and lone.meta == a[9].meta
    flac = demo.Config(n=2, duration_s=1.5, seed=7, format="flac")
    assert [x.data for x in demo.items(flac)] == [x.data for x in demo.items(flac)]
    other = list(demo.items(demo.Config(n=12, duration_s=1.5, seed=8)))
    assert all(x.data != y.data for x, y in zip(a, other))


def test_classes_are_crossed_and_balanced():
    plans = [demo.plan(demo.Config(), i) for i in range(480)]
    assert len({(p.culture, p.label) for p in plans[:64]}) == 16  # every pairing by n=64
    cells = Counter((p.culture, p.label) for p in plans)
    assert len(cells) == 16 and max(cells.values()) <= 1.6 * min(cells.values())
    for key, names in (("culture", CULTURES), ("label", LABELS), ("affect", AFFECTS)):
        counts = Counter(getattr(p, key) for p in plans)
        assert set(counts) == set(names) and max(counts.values()) <= 1.25 * min(counts.values())
    share = sum(p.singer is not None for p in plans) / len(plans)
    assert 0.35 <= share <= 0.45


def test_groups_rank_distinct_singers_on_one_song():
    cfg = demo.Config(n=500)
    groups = defaultdict(list)
    for i in range(cfg.n):
        p = demo.plan(cfg, i)
        if p.group is not None:
            groups[p.group].append(p)
    assert len(groups) >= 30
    for members in groups.values():
        assert 4 <= len(members) <= 6
        assert len({(p.song, p.culture, p.label, p.affect, p.tonic, p.bpm) for p in members}) == 1
        assert len({p.singer for p in members}) == len(members)
        by_rank = sorted(members, key=lambda p: p.rank)
        assert [p.rank for p in by_rank] == list(range(1, len(members) + 1))
        assert all(a.score >= b.score for a, b in zip(by_rank, by_rank[1:]))


# ------------------------------------------------------------------ singing quality


def _eta2(score: np.ndarray, who: np.ndarray) -> float:
    """Share of score variance explained by the singer (one-way ANOVA's eta squared)."""
    between = sum((who == k).sum() * (score[who == k].mean() - score.mean()) ** 2 for k in np.unique(who))
    return float(between / ((score - score.mean()) ** 2).sum())


def test_score_tracks_pitch_error_and_singer_only_in_the_correlated_half():
    cfg = demo.Config(n=3000)
    sung = [p for p in (demo.plan(cfg, i) for i in range(cfg.n)) if p.singer is not None]
    regimes = {r: [p for p in sung if p.regime == r] for r in ("correlated", "independent")}
    assert abs(len(regimes["correlated"]) - len(regimes["independent"])) <= 0.1 * len(sung)
    eta = {}
    for r, ps in regimes.items():
        score = np.array([p.score for p in ps])
        err = np.array([p.pitch_error_cents for p in ps])
        assert np.corrcoef(score, err)[0, 1] < -0.9
        eta[r] = _eta2(score, np.array([p.singer for p in ps]))
    assert eta["correlated"] > 0.5 and eta["independent"] < 0.1, eta


def _measured_error(voice: np.ndarray, notes, sr: int) -> float:
    """RMS (cents) over sung notes of the pitch measured in the voice stem minus the target.

    Harmonic-sum salience over candidates within +-1 semitone of the target, on each note's
    steady part; vibrato averages out over a note, detuning and slow wobble do not."""
    cents = np.arange(-100, 101, 2)
    devs = []
    for t0, dur, target, vel in zip(*notes):
        a, b = int((t0 + 0.2) * sr), int((t0 + dur - 0.03) * sr)
        if vel == 0 or b - a < int(0.15 * sr) or b > len(voice):
            continue
        n = 1 << 16
        mag = np.abs(np.fft.rfft(voice[a:b] * np.hanning(b - a), n))
        f0 = 440.0 * 2 ** ((target - 69) / 12 + cents / 1200)
        salience = np.interp(np.arange(1, 6)[:, None] * f0 * n / sr, np.arange(len(mag)), mag).sum(0)
        devs.append(cents[np.argmax(salience)])
    return float(np.sqrt(np.mean(np.square(devs))))


def test_score_falls_with_pitch_error_measured_in_the_audio():
    cfg = demo.Config(n=120, duration_s=4.0, seed=2)
    rows = []
    for i in range(cfg.n):
        p = demo.plan(cfg, i)
        if p.singer is not None:
            _, info = demo.render(cfg, p)
            rows.append((p.score, _measured_error(info["voice"], info["notes"], cfg.sample_rate)))
    score, err = np.array(rows).T
    assert len(rows) >= 30 and np.corrcoef(score, err)[0, 1] < -0.5


# ------------------------------------------------------------------ learnability


def _frames(y, n, hop):
    idx = np.arange(n)[None, :] + hop * np.arange(1 + (len(y) - n) // hop)[:, None]
    return np.abs(np.fft.rfft(y[idx] * np.hanning(n), axis=1))


def _mel_bank(sr, n_fft, n_mels=40, fmax=8000.0):
    hz = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + fmax / 700), n_mels + 2) / 2595) - 1)
    f = np.fft.rfftfreq(n_fft, 1 / sr)[None, :]
    lo, c, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return np.maximum(0, np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)))


def _timbre_rhythm(y, sr):
    """Log-mel mean/std over time, plus the autocorrelation of spectral flux (tempo, meter)."""
    M = np.log(_frames(y, 1024, 512) ** 2 @ _mel_bank(sr, 1024).T + 1e-8)
    flux = np.maximum(np.diff(M, axis=0), 0).sum(1)
    flux -= flux.mean()
    ac = np.correlate(flux, flux, "full")[len(flux) - 1:][:88]
    return np.concatenate([M.mean(0), M.std(0), ac[4::2] / (ac[0] + 1e-9)])


PENT = np.isin(np.arange(12), [0, 2, 4, 7, 9]).astype(float)
DIAT = np.isin(np.arange(12), [0, 2, 4, 5, 7, 9, 11]).astype(float)


def _pitch_classes(y, sr):
    """Key-invariant pitch-class statistics from a quarter-tone (24-bin) histogram of
    spectral peaks: its circular autocorrelation (interval content), how much a best-fit
    pentatonic / diatonic set captures, the off-semitone (quarter-tone) share, and how
    concentrated it is (a drone)."""
    S = _frames(y, 4096, 2048)
    L = np.log(S + 1e-9)
    a, b, c = L[:, :-2], L[:, 1:-1], L[:, 2:]
    hz = (np.arange(1, S.shape[1] - 1) + 0.5 * (a - c) / (a - 2 * b + c + 1e-12)) * sr / 4096
    ok = (b > a) & (b > c) & (hz > 80) & (hz < 1500)
    bins = np.round(24 * np.log2(hz[ok] / 440)).astype(int) % 24  # quarter tones from A440
    ch = np.bincount(bins, weights=S[:, 1:-1][ok], minlength=24)
    ch /= ch.sum()
    auto = np.array([ch @ np.roll(ch, k) for k in range(1, 13)]) / (ch @ ch)
    rot = np.array([np.roll(ch[0::2], -r) for r in range(12)])
    top = np.sort(ch)[::-1]
    fit = [(rot @ PENT).max(), (rot @ DIAT).max(), ch[1::2].sum(), top[0], top[:2].sum()]
    return np.concatenate([auto, fit])


def test_culture_genre_and_affect_are_learnable_from_audio():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cfg = demo.Config(n=256, duration_s=4.0, seed=11)
    timbre, pitch, metas = [], [], []
    for it in demo.items(cfg):
        y, sr = _decode(it)
        timbre.append(_timbre_rhythm(y[:, 0], sr))
        pitch.append(_pitch_classes(y[:, 0], sr))
        metas.append(it.meta)
    # split by song: the clips of a singing group are one song and must not straddle the split
    train = np.array([demo.plan(cfg, i).song % 2 == 0 for i in range(cfg.n)])
    accuracy = {}
    for key, X, C in (("culture", np.array(pitch), 10.0), ("label", np.array(timbre), 1.0),
                      ("affect_label", np.array(timbre), 1.0)):
        y = np.array([m[key] for m in metas])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        accuracy[key] = clf.fit(X[train], y[train]).score(X[~train], y[~train])
    print("held-out accuracy:", {k: round(v, 3) for k, v in accuracy.items()})
    # chance: 0.25 / 0.25 / 0.33
    assert min(accuracy.values()) >= 0.6, accuracy


def test_generation_is_vectorised_fast():
    cfg = demo.Config(n=24)  # default duration and rate
    t = time.perf_counter()
    for _ in demo.items(cfg):
        pass
    per_clip = (time.perf_counter() - t) / cfg.n
    # ~20 ms on one core; a per-sample Python loop would be ~100x slower. Loose for busy CI.
    assert per_clip < 0.15, per_clip
