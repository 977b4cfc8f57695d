"""A synthetic How2-like corpus for video-language summarisation (VLS), its tokenizer and loader.

How2 (Sanabria et al. 2018) pairs instructional videos with their speech transcripts and a short
summary; VG-BART / VG-T5 (Yu et al. 2021) read the transcript and one feature vector per clip and
write the summary. This module stands in for it, in the same shape:

- a *latent step sequence* ``(verb_1, object_1), ..., (verb_K, object_K)`` drawn from a task;
- a *transcript*: a greeting, sometimes a preview that lists some steps **in shuffled order**, one
  sentence per step **in the order they happen** (some vague: "now do this part right here", or
  naming only the verb or only the object, so that only the video says which step it is), filler
  sentences, and ASR-like word drops / substitutions;
- *clip features* ``x_t in R^D`` from the same steps: ``x_t = v_verb + o_object + c + e_t`` over a
  few clips per step, ``c`` a per-video camera offset and ``e_t`` AR(1) noise (temporal
  smoothness), with "talking head" clips before and after;
- a *reference summary* that names the task and the steps in the order they happen.

Two domains: ``"source"`` (18 tasks; summary "learn how to T : s1 , s2 and s3 .") is the large
pretraining split, generated on the fly by :func:`readpvla.tasks.vls.pretrain`; ``"target"`` (6 held-out
tasks made of the same verbs and objects, whose titles must be copied from the transcript; summary
"learn how to T : first s1 , then s2 , finally s3 ."; 1.3x noisier video) is the low-resource
transfer split shipped in ``data_samples/how2/`` (``train`` / ``val`` / ``test``; ``RECIPE.md``).
``"target_hard"`` (issue 15: the target split saturates, Full reaches 98 ROUGE-1) has the same
tasks and video, but twice as many step sentences that only the video resolves (40% vague, 30%
naming only the verb or the object) and summaries in **paraphrase variety** (three openings, two
words for "first", three for "then", two for "finally", drawn at random per video): no model
can predict the wording, so ROUGE has a ceiling well below 100 and the content (which steps,
from the video) is what separates methods. Shipped as ``hard_{train,val,test}``.

On disk a split is ``{split}.jsonl`` (one sample a line: ``vid``, ``transcript``, ``summary``, and
optionally ``task``, ``domain``, ``steps``) plus ``{split}_video.npz`` (one ``[T, D]`` array per
``vid``). Real How2 features drop in the same way: a JSONL of transcripts and summaries and an npz
(or a folder of ``{vid}.npy``) of clip features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from readpvla.data.qvh import _npz_array, _open_npz, _text_lines, _utf8_error, _why

__all__ = ["DOMAINS", "HARD", "How2Collator", "How2Config", "How2Sample", "LOW_RESOURCE",
           "SOURCE_TASKS",
           "TARGET_TASKS", "build_data_samples", "build_tokenizer", "clip_step_labels", "decode",
           "generate_split",
           "load_split", "load_tokenizer", "train_tokenizer", "vocabulary", "write_split"]

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0, 1, 2, 3
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

# (task title, domain, its six steps as (verb, object)). Every verb and object of a target task
# also occurs in some source task, so the pretrained model has seen each word and each clip part.
SOURCE_TASKS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("fix a flat bike tire", "bikes", [("remove", "wheel"), ("loosen", "bolt"), ("pull", "tube"),
                                       ("patch", "hole"), ("inflate", "tire"), ("tighten", "bolt")]),
    ("clean a bike chain", "bikes", [("shift", "gear"), ("spray", "chain"), ("scrub", "chain"),
                                     ("wipe", "chain"), ("oil", "chain"), ("spin", "pedal")]),
    ("adjust bike brakes", "bikes", [("squeeze", "lever"), ("loosen", "cable"), ("align", "pad"),
                                     ("tighten", "cable"), ("spin", "wheel"), ("test", "brake")]),
    ("bake banana bread", "cooking", [("mash", "banana"), ("melt", "butter"), ("mix", "flour"),
                                      ("pour", "batter"), ("bake", "loaf"), ("slice", "loaf")]),
    ("make a tomato sauce", "cooking", [("chop", "onion"), ("heat", "oil"), ("stir", "garlic"),
                                        ("add", "tomato"), ("simmer", "sauce"), ("season", "sauce")]),
    ("cook fluffy rice", "cooking", [("rinse", "rice"), ("boil", "water"), ("add", "rice"),
                                     ("cover", "pot"), ("simmer", "rice"), ("fluff", "rice")]),
    ("plant a tomato seedling", "garden", [("dig", "hole"), ("loosen", "soil"), ("place", "seedling"),
                                          ("fill", "hole"), ("water", "soil"), ("stake", "stem")]),
    ("prune a rose bush", "garden", [("wear", "glove"), ("cut", "stem"), ("remove", "leaf"),
                                     ("shape", "bush"), ("rake", "leaf"), ("water", "bush")]),
    ("repot a house plant", "garden", [("water", "plant"), ("lift", "plant"), ("loosen", "root"),
                                       ("fill", "pot"), ("place", "plant"), ("press", "soil")]),
    ("patch a drywall hole", "home", [("cut", "patch"), ("sand", "edge"), ("spread", "compound"),
                                      ("press", "patch"), ("sand", "wall"), ("paint", "wall")]),
    ("unclog a sink drain", "home", [("remove", "stopper"), ("pour", "water"), ("plunge", "drain"),
                                     ("open", "trap"), ("clean", "trap"), ("flush", "drain")]),
    ("hang a picture frame", "home", [("measure", "wall"), ("mark", "spot"), ("drill", "hole"),
                                      ("insert", "anchor"), ("drive", "screw"), ("level", "frame")]),
    ("knit a simple scarf", "crafts", [("cast", "yarn"), ("hold", "needle"), ("knit", "row"),
                                       ("count", "stitch"), ("bind", "row"), ("trim", "yarn")]),
    ("fold a paper crane", "crafts", [("fold", "paper"), ("crease", "edge"), ("flip", "paper"),
                                      ("open", "flap"), ("shape", "wing"), ("pull", "neck")]),
    ("change car oil", "cars", [("lift", "car"), ("open", "drain"), ("remove", "filter"),
                                ("insert", "filter"), ("pour", "oil"), ("check", "level")]),
    ("jump start a car", "cars", [("open", "hood"), ("attach", "cable"), ("start", "engine"),
                                  ("wait", "minute"), ("remove", "cable"), ("drive", "car")]),
    ("groom a long haired dog", "pets", [("brush", "coat"), ("trim", "nail"), ("wash", "coat"),
                                         ("rinse", "coat"), ("dry", "coat"), ("reward", "dog")]),
    ("stretch before a run", "fitness", [("roll", "neck"), ("swing", "arm"), ("lunge", "leg"),
                                         ("touch", "toe"), ("hold", "stretch"), ("shake", "leg")]),
]
TARGET_TASKS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("fix a bike cable", "bikes", [("shift", "gear"), ("remove", "cable"), ("trim", "cable"),
                                   ("insert", "cable"), ("tighten", "bolt"), ("test", "brake")]),
    ("make garlic rice", "cooking", [("chop", "garlic"), ("heat", "butter"), ("stir", "rice"),
                                     ("pour", "water"), ("cover", "pot"), ("season", "rice")]),
    ("plant a seedling row", "garden", [("rake", "soil"), ("dig", "row"), ("place", "seedling"),
                                        ("press", "soil"), ("water", "seedling"), ("trim", "leaf")]),
    ("level a wall frame", "home", [("measure", "frame"), ("mark", "wall"), ("drill", "hole"),
                                    ("insert", "screw"), ("level", "frame"), ("clean", "wall")]),
    ("clean a car", "cars", [("rinse", "car"), ("mix", "water"), ("scrub", "wheel"),
                             ("wipe", "hood"), ("dry", "car"), ("check", "tire")]),
    ("wash a dog", "pets", [("brush", "coat"), ("wash", "dog"), ("rinse", "dog"),
                            ("dry", "dog"), ("trim", "nail"), ("reward", "dog")]),
]

_NAMES = ["anna", "ben", "carla", "david", "emma", "frank", "grace", "henry", "iris", "jack"]
_GREETINGS = [
    "hi , my name is {name} and today i am going to show you how to {task} .",
    "hello , i am {name} . in this clip we will {task} .",
    "welcome back . today we learn how to {task} .",
    "hey there , {name} here . let us {task} together .",
]
_PREVIEW = "you will need to {steps} ."
_STEP = [
    "now {v} the {o} .",
    "next you want to {v} the {o} .",
    "go ahead and {v} the {o} .",
    "then we {v} the {o} like this .",
    "at this point , {v} the {o} carefully .",
]
_FIRST = ["first , {v} the {o} .", "to start , {v} the {o} ."]
_LAST = ["finally , {v} the {o} .", "last , {v} the {o} ."]
_VAGUE = [  # neither the verb nor the object: only the video says which step this is
    "now do this part right here .",
    "next you want to do this like so .",
    "then just do that , like this .",
    "go ahead and take care of this one .",
]
_ONLY_OBJECT = ["now this {o} , just like this .", "see the {o} ? do it like so ."]
_ONLY_VERB = ["now {v} it like this .", "then you {v} this one right here ."]
_FILLER = [
    "make sure you have everything ready .",
    "you can see it right here .",
    "be careful not to rush .",
    "this takes about {n} minutes .",
    "it is really not that hard .",
    "a lot of people forget this .",
    "this is a free video from our expert series .",
    "this video shows you the basics .",
    "keep a towel nearby .",
    "it is an easy job .",
]
_CLOSING = ["and that is how you {task} .", "that is all there is to it .", "thanks for watching ."]
_NUMBERS = ["two", "three", "five", "ten", "fifteen"]


#: the paraphrases of a ``"target_hard"`` summary (every word occurs in the source transcripts,
#: so the shipped tokenizer has it)
HARD_OPENINGS = ("learn how to {task} :", "in this video we will {task} :",
                 "this video shows you how to {task} :")
HARD_FIRST = ("first", "to start ,")
HARD_THEN = ("then", "next", "now")
HARD_LAST = ("finally", "last ,")
#: the ``"target_hard"`` transcript's shares of vague and partial step sentences
HARD_TRANSCRIPT = {"p_vague": 0.4, "p_partial": 0.3}
DOMAINS = ("source", "target", "target_hard")


def _hard_summary(task: str, steps: Sequence[tuple[str, str]], rng: np.random.Generator) -> str:
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    phrases = [f"{v} the {o}" for v, o in steps]
    middle = "".join(f" , {pick(HARD_THEN)} {p}" for p in phrases[1:-1])
    return (f"{pick(HARD_OPENINGS).format(task=task)} {pick(HARD_FIRST)} {phrases[0]}{middle} , "
            f"{pick(HARD_LAST)} {phrases[-1]} .")


def _summary(style: str, task: str, steps: Sequence[tuple[str, str]]) -> str:
    phrases = [f"{v} the {o}" for v, o in steps]
    if style == "source":  # "learn how to T : s1 , s2 and s3 ."
        listed = " , ".join(phrases[:-1]) + " and " + phrases[-1]
        return f"learn how to {task} : {listed} ."
    # target: "learn how to T : first s1 , then s2 , finally s3 ." (order made explicit)
    middle = "".join(f" , then {p}" for p in phrases[1:-1])
    return f"learn how to {task} : first {phrases[0]}{middle} , finally {phrases[-1]} ."


@dataclass
class How2Config:
    """Knobs of the generator (defaults are what ``data_samples/how2`` was made with)."""

    video_dim: int = 48  # D, clip feature size (real How2: 2048-d ResNeXt-101 per 16 frames)
    min_steps: int = 3  # K, steps per video, uniform in [min_steps, max_steps]
    max_steps: int = 5
    clips_per_step: tuple[int, int] = (3, 6)  # clips each step lasts, uniform in the range
    p_preview: float = 0.5  # a sentence listing some steps in shuffled order
    p_vague: float = 0.2  # step sentence names neither verb nor object
    p_partial: float = 0.2  # step sentence names only the verb or only the object
    p_filler: float = 0.35  # a filler sentence after a step
    p_asr: float = 0.02  # per word: dropped with p_asr, replaced by a random word with p_asr
    rho: float = 0.8  # AR(1) coefficient of the clip noise (temporal smoothness)
    clip_noise: float = 0.45  # stationary std of the clip noise (per dimension, x sqrt(D))
    camera_noise: float = 0.3  # std of the per-video offset c
    world_seed: int = 1234  # seeds the verb / object / talking-head vectors (shared by domains)


@dataclass
class How2Sample:
    """One video: transcript, clip features ``video`` ``[T, D]`` (float32) and summary."""

    vid: str
    transcript: str
    summary: str
    video: np.ndarray
    task: str = ""
    domain: str = ""
    steps: list[str] = field(default_factory=list)


def vocabulary() -> tuple[list[str], list[str]]:
    """All verbs and all objects of every task (sorted): the latent step alphabet."""
    verbs, objects = set(), set()
    for _, _, steps in SOURCE_TASKS + TARGET_TASKS:
        for v, o in steps:
            verbs.add(v)
            objects.add(o)
    return sorted(verbs), sorted(objects)


def _world(config: How2Config) -> dict[str, np.ndarray]:
    """Fixed latent vectors: one per verb, per object, and a "talking head" vector."""
    rng = np.random.default_rng(config.world_seed)
    verbs, objects = vocabulary()
    d = config.video_dim
    world = {f"v:{w}": rng.normal(0, 1, d) / np.sqrt(d) * 2.0 for w in verbs}
    world.update({f"o:{w}": rng.normal(0, 1, d) / np.sqrt(d) * 2.0 for w in objects})
    world["head"] = rng.normal(0, 1, d) / np.sqrt(d) * 2.0
    return world


def _clips(steps: Sequence[tuple[str, str]], rng: np.random.Generator, world: dict[str, np.ndarray],
           config: How2Config, noise_scale: float, labels: list[int] | None = None) -> np.ndarray:
    """Clip features ``[T, D]``: talking head, then each step's clips in order, then talking head.
    ``labels`` (if given) receives what each clip shows: the step's index, -1 talking head, -2 a
    transition clip (the random draws are the same either way)."""
    n_head = int(rng.integers(1, 4))
    protos: list[np.ndarray] = [world["head"]] * n_head
    marks = [-1] * n_head
    for s, (v, o) in enumerate(steps):
        p = world[f"v:{v}"] + world[f"o:{o}"]
        if len(protos) > 0:  # one transition clip that blends the previous and the next step
            protos.append(0.5 * (protos[-1] + p))
            marks.append(-2)
        n = int(rng.integers(config.clips_per_step[0], config.clips_per_step[1] + 1))
        protos += [p] * n
        marks += [s] * n
    n_tail = int(rng.integers(1, 3))
    protos += [world["head"]] * n_tail
    marks += [-1] * n_tail
    if labels is not None:
        labels[:] = marks
    t, d = len(protos), config.video_dim
    sigma = config.clip_noise * noise_scale / np.sqrt(d)
    e = np.empty((t, d))
    e[0] = rng.normal(0, sigma, d)
    for i in range(1, t):  # AR(1): e_t = rho e_{t-1} + sqrt(1 - rho^2) xi_t, stationary std sigma
        e[i] = config.rho * e[i - 1] + np.sqrt(1 - config.rho**2) * rng.normal(0, sigma, d)
    camera = rng.normal(0, config.camera_noise / np.sqrt(d), d)
    return (np.stack(protos) + camera + e).astype(np.float32)


def _asr(words: list[str], rng: np.random.Generator, p: float, pool: Sequence[str]) -> list[str]:
    out = []
    for w in words:
        u = rng.random()
        if u < p:
            continue  # dropped word
        out.append(pool[int(rng.integers(len(pool)))] if u < 2 * p else w)
    return out


def _transcript(task: str, steps: Sequence[tuple[str, str]], rng: np.random.Generator,
                config: How2Config) -> str:
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    sents = [pick(_GREETINGS).format(name=pick(_NAMES), task=task)]
    if rng.random() < config.p_preview:
        shown = [f"{v} the {o}" for v, o in steps]
        rng.shuffle(shown)
        shown = shown[: max(2, len(shown) - 1)]
        sents.append(_PREVIEW.format(steps=" , ".join(shown[:-1]) + " and " + shown[-1]))
    for i, (v, o) in enumerate(steps):
        u = rng.random()
        if u < config.p_vague:
            s = pick(_VAGUE)
        elif u < config.p_vague + config.p_partial:
            s = pick(_ONLY_OBJECT if rng.random() < 0.5 else _ONLY_VERB)
        else:
            s = pick(_FIRST if i == 0 else _LAST if i == len(steps) - 1 else _STEP)
        sents.append(s.format(v=v, o=o))
        if rng.random() < config.p_filler:
            sents.append(pick(_FILLER).format(n=pick(_NUMBERS)))
    sents.append(pick(_CLOSING).format(task=task))
    words = " ".join(sents).split()
    verbs, objects = vocabulary()
    return " ".join(_asr(words, rng, config.p_asr, verbs + objects))


def generate_split(domain: str, n: int, seed: int, config: How2Config | None = None,
                   prefix: str | None = None, clip_labels: list[np.ndarray] | None = None
                   ) -> list[How2Sample]:
    """Draw ``n`` samples of a domain, reproducibly.

    Args:
        domain: ``"source"`` (pretraining tasks and summary style), ``"target"`` (held-out
            tasks, the first / then / finally summary style, 1.3x clip noise) or
            ``"target_hard"`` (the target's tasks and video, more steps only the video names,
            paraphrased summaries: module docstring).
        n: number of samples (> 0).
        seed: the split's seed; the latent word vectors come from ``config.world_seed``.
        config: generator knobs (default :class:`How2Config`).
        prefix: ``vid`` prefix (default: the domain name).
        clip_labels: if given, receives one int array ``[T]`` per sample: what each clip shows
            (the step's index, -1 talking head, -2 a transition; the generator's truth, which
            :func:`clip_step_labels` recovers from the features).

    Returns:
        ``n`` :class:`How2Sample`, same output for the same arguments.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    config = config or How2Config()
    if not 1 <= config.min_steps <= config.max_steps <= 6:
        raise ValueError("need 1 <= min_steps <= max_steps <= 6 (a task has six steps)")
    tasks = SOURCE_TASKS if domain == "source" else TARGET_TASKS
    noise_scale = 1.0 if domain == "source" else 1.3
    hard = domain == "target_hard"
    tconfig = replace(config, **HARD_TRANSCRIPT) if hard else config
    world, rng = _world(config), np.random.default_rng(seed)
    prefix = domain if prefix is None else prefix
    out = []
    for i in range(n):
        task, dom, pool = tasks[int(rng.integers(len(tasks)))]
        k = int(rng.integers(config.min_steps, config.max_steps + 1))
        steps = [pool[j] for j in rng.permutation(len(pool))[:k]]  # the order they happen in
        marks: list[int] = []
        out.append(How2Sample(
            vid=f"{prefix}_{i:06d}",
            transcript=_transcript(task, steps, rng, tconfig),
            summary=_hard_summary(task, steps, rng) if hard else _summary(domain, task, steps),
            video=_clips(steps, rng, world, config, noise_scale, marks),
            task=task, domain=dom, steps=[f"{v} the {o}" for v, o in steps],
        ))
        if clip_labels is not None:
            clip_labels.append(np.asarray(marks, dtype=np.int64))
    return out


def clip_step_labels(sample: How2Sample, config: How2Config | None = None) -> np.ndarray:
    r"""Which of its steps each clip of a synthetic video shows, recovered from the features.

    Every clip is :math:`x_t = p_t + c + e_t` with :math:`p_t` the talking-head vector or a
    step's :math:`v_{verb} + o_{object}` (:func:`generate_split`); the label is the nearest of
    those prototypes of the video (its steps and the talking head) after removing the video's
    offset (estimated as the mean residual to the nearest prototypes, two rounds):

    .. math:: \ell_t = rg\min_{s \in \{	ext{head}, 1..K\}} \lVert x_t - \hat c - p_sVert

    Returns an int array ``[T]``: the step's index in ``sample.steps`` (0-based), or -1 for the
    talking head. A transition clip (half one step, half the next) goes to the nearer of the
    two. On the shipped hard test split 99.9% of the non-transition clips get the generator's
    label (``tests/test_vls_probes.py`` checks fresh draws).

    Raises:
        ValueError: a sample without ``steps``, a step that is not "<verb> the <object>" of
            the generator's vocabulary, or features of another width than ``config.video_dim``.
    """
    config = config or How2Config()
    if not sample.steps:
        raise ValueError(f"{sample.vid}: no 'steps' annotation (the synthetic splits carry it)")
    world = _world(config)
    protos = [world["head"]]
    for step in sample.steps:
        verb, the, obj = (step.split(" ") + ["", "", ""])[:3]
        if the != "the" or f"v:{verb}" not in world or f"o:{obj}" not in world:
            raise ValueError(f"{sample.vid}: step {step!r} is not '<verb> the <object>' of the "
                             "synthetic vocabulary")
        protos.append(world[f"v:{verb}"] + world[f"o:{obj}"])
    x = np.asarray(sample.video, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != config.video_dim:
        raise ValueError(f"{sample.vid}: video must be [T, {config.video_dim}], got {x.shape}")
    p = np.stack(protos)  # (K + 1, D)
    offset = np.zeros(x.shape[1])
    for _ in range(2):
        near = ((x - offset)[:, None, :] - p[None]).__pow__(2).sum(-1).argmin(1)  # (T,)
        offset = (x - p[near]).mean(0)
    return near.astype(np.int64) - 1


# -- files ------------------------------------------------------------------------------------


def write_split(samples: Sequence[How2Sample], root: str | Path, split: str) -> None:
    """Write ``{root}/{split}.jsonl`` and ``{root}/{split}_video.npz`` (float16 features)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{split}.jsonl", "w", encoding="utf-8") as f:
        for s in samples:
            row = {"vid": s.vid, "transcript": s.transcript, "summary": s.summary,
                   "task": s.task, "domain": s.domain, "steps": s.steps}
            f.write(json.dumps(row) + "\n")
    np.savez_compressed(root / f"{split}_video.npz",
                        **{s.vid: s.video.astype(np.float16) for s in samples})


def _features(root: Path, split: str) -> tuple[dict[str, np.ndarray] | None, Path]:
    npz = root / f"{split}_video.npz"
    if npz.is_file():
        with _open_npz(npz, " of one [T, D] array per vid") as z:
            return {k: _npz_array(z, k, f"{npz}[{k!r}]:") for k in z.files}, npz
    folder = root / f"{split}_video"
    if folder.is_dir():
        return None, folder  # one {vid}.npy per video, read lazily
    raise FileNotFoundError(f"no clip features for split {split!r}: expected {npz} or {folder}/")


def _load_npy(npy: Path, where: str) -> np.ndarray:
    """One ``{vid}.npy``; any failure raises ``ValueError`` naming ``where`` and the file."""
    try:
        video = np.load(npy, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as err:  # pickled data, a bad header, a truncated file, ...
        raise ValueError(f"{where}: {npy}: cannot be read as .npy ({_why(err)})") from None
    if not isinstance(video, np.ndarray):
        video.close()
        raise ValueError(f"{where}: {npy}: expected an .npy array, got an .npz archive")
    return video


def load_split(root: str | Path, split: str) -> list[How2Sample]:
    """Read a split written by :func:`write_split` (or real How2 data in that layout).

    Clip features come from ``{split}_video.npz`` (one array per ``vid``) or a folder
    ``{split}_video/`` of ``{vid}.npy`` files; both are read with ``allow_pickle=False``.

    Raises:
        FileNotFoundError: the JSONL or the features are missing.
        ValueError: a malformed line, named as ``path:line`` (a byte that is not UTF-8, bad
            JSON, a missing or non-string field, ``steps`` that is not a list of strings, an
            unknown ``vid``, features that are not a finite real ``[T, D]`` array or cannot be
            read, or a ``D`` that differs from the first video's, both named); a feature archive
            that cannot be read (named); a file without samples.
    """
    root = Path(root)
    path = root / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no such split file: {path}")
    feats, where = _features(root, split)
    out: list[How2Sample] = []
    first: tuple[str, int, int, str] | None = None  # vid, line, D, source of the first video
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        for key in ("vid", "transcript", "summary"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{path}:{lineno}: field {key!r} must be a non-empty string")
        for key in ("task", "domain"):  # optional: absent or null is ""
            if not isinstance(row.get(key) or "", str):
                raise ValueError(f"{path}:{lineno}: {key!r} must be a string, got {row[key]!r}")
        steps = row.get("steps") or []  # optional: absent or null is []
        if not isinstance(steps, list) or not all(isinstance(x, str) for x in steps):
            raise ValueError(f"{path}:{lineno}: 'steps' must be a list of strings, got {steps!r}")
        vid = row["vid"]
        if feats is not None:
            if vid not in feats:
                raise ValueError(f"{path}:{lineno}: vid {vid!r} has no features in {where}")
            video, source = feats[vid], ""
        else:
            npy = where / f"{vid}.npy"
            if not npy.is_file():
                raise ValueError(f"{path}:{lineno}: vid {vid!r} has no features file {npy}")
            video, source = _load_npy(npy, f"{path}:{lineno}: vid {vid!r}"), f" ({npy})"
        if not np.issubdtype(video.dtype, np.number) or np.iscomplexobj(video):
            raise ValueError(f"{path}:{lineno}: features of {vid!r} must be real numbers, got "
                             f"dtype {video.dtype}{source or f' (in {where})'}")
        video = np.asarray(video, dtype=np.float32)
        if video.ndim != 2 or video.shape[0] == 0 or video.shape[1] == 0:
            raise ValueError(f"{path}:{lineno}: features of {vid!r} must be a finite [T, D] "
                             f"array with T, D > 0, got shape {video.shape}"
                             f"{source or f' (in {where})'}")
        if not np.isfinite(video).all():
            raise ValueError(f"{path}:{lineno}: features of {vid!r} must be a finite [T, D] "
                             f"array, but {int((~np.isfinite(video)).sum())} values are NaN or "
                             f"inf{source or f' (in {where})'}")
        if first is None:
            first = (vid, lineno, video.shape[1], source)
        elif video.shape[1] != first[2]:
            raise ValueError(f"{path}:{lineno}: features of {vid!r} have D={video.shape[1]}"
                             f"{source} but those of {first[0]!r} (line {first[1]}) have "
                             f"D={first[2]}{first[3] or f' (in {where})'}")
        out.append(How2Sample(vid, row["transcript"], row["summary"], video,
                              row.get("task") or "", row.get("domain") or "", list(steps)))
    if not out:
        raise ValueError(f"{path}: no samples")
    return out


# -- tokenizer ----------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1000) -> Any:
    """Train a byte-pair-encoding tokenizer (``tokenizers``) on ``texts``.

    Metaspace pre-tokenisation (SentencePiece style), so ``decode(encode(s)) == s`` for text
    made of the training characters; specials ``<pad> <s> </s> <unk>`` get ids 0-3, and
    ``encode`` appends ``</s>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;?!'-")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", EOS_ID)])
    return tok


def load_tokenizer(path: str | Path) -> Any:
    """Load a ``tokenizer.json`` and check that its special tokens have the ids we rely on.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``"PATH:LINE: ..."`` for a byte that is not UTF-8; ``"PATH: ..."`` for a file
            ``tokenizers`` cannot read, or special tokens with other ids.
    """
    from tokenizers import Tokenizer

    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file {path}")
    data = path.read_bytes()
    bad = _utf8_error(path, data)
    if bad is not None:
        raise bad
    try:
        tok = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as err:  # the Rust side raises a bare Exception
        raise ValueError(f"{path}: cannot be read as a tokenizer ({err})") from None
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            raise ValueError(f"{path}: special token {s!r} must have id {i}, "
                             f"has {tok.token_to_id(s)}")
    return tok


def decode(tokenizer: Any, ids: Tensor | Sequence[int]) -> str:
    """Ids -> text, stopping at the first ``</s>`` and skipping specials."""
    ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
    if EOS_ID in ids[1:]:  # a decoder may start with </s> (BART's start token)
        ids = ids[: ids.index(EOS_ID, 1)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


# -- batches -----------------------------------------------------------------------------------


@dataclass
class How2Collator:
    """Samples -> a padded batch for :class:`readpvla.backbones.VGBart` / ``VGT5``.

    Returns a dict: ``input_ids`` long ``[B, L]`` and ``attention_mask`` long ``[B, L]``
    (transcript + ``</s>``, right-padded with ``<pad>``); ``video`` float ``[B, T, D]`` and
    ``video_mask`` bool ``[B, T]``; ``labels`` long ``[B, S]`` (summary + ``</s>``, padded
    with -100); ``references`` (the summaries as text) and ``vids``.
    """

    tokenizer: Any
    max_source_len: int = 192  # transcript tokens kept (How2 practice: truncate the transcript)
    max_target_len: int = 64
    max_clips: int = 64

    def __call__(self, samples: Sequence[How2Sample]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        src = [e.ids[: self.max_source_len - 1] + [EOS_ID] if len(e.ids) > self.max_source_len
               else e.ids for e in self.tokenizer.encode_batch([s.transcript for s in samples])]
        tgt = [e.ids[: self.max_target_len - 1] + [EOS_ID] if len(e.ids) > self.max_target_len
               else e.ids for e in self.tokenizer.encode_batch([s.summary for s in samples])]
        b = len(samples)
        input_ids = torch.full((b, max(map(len, src))), PAD_ID, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        labels = torch.full((b, max(map(len, tgt))), -100, dtype=torch.long)
        for i, (s, t) in enumerate(zip(src, tgt)):
            input_ids[i, : len(s)] = torch.tensor(s)
            attention_mask[i, : len(s)] = 1
            labels[i, : len(t)] = torch.tensor(t)
        clips = [s.video[: self.max_clips] for s in samples]
        video = torch.zeros(b, max(len(c) for c in clips), clips[0].shape[1])
        video_mask = torch.zeros(b, video.shape[1], dtype=torch.bool)
        for i, c in enumerate(clips):
            video[i, : len(c)] = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
            video_mask[i, : len(c)] = True
        return {"input_ids": input_ids, "attention_mask": attention_mask, "video": video,
                "video_mask": video_mask, "labels": labels,
                "references": [s.summary for s in samples], "vids": [s.vid for s in samples]}


# -- the shipped sample ---------------------------------------------------------------------------

#: sizes and seeds of the shipped low-resource split (target domain)
LOW_RESOURCE = {"train": (400, 101), "val": (100, 102), "test": (200, 103)}
#: the same for the ``"target_hard"`` domain, shipped as ``hard_<split>``
HARD = {"train": (400, 201), "val": (100, 202), "test": (200, 203)}
TOKENIZER_CORPUS = ("source", 4000, 100)  # domain, n, seed of the tokenizer's training text


def build_tokenizer(config: How2Config | None = None) -> Any:
    """The shipped tokenizer: BPE trained on the transcripts and summaries of a source corpus
    (:data:`TOKENIZER_CORPUS`); every target word occurs there (tests check it)."""
    domain, n, seed = TOKENIZER_CORPUS
    corpus = generate_split(domain, n, seed, config or How2Config())
    return train_tokenizer([t for s in corpus for t in (s.transcript, s.summary)])


def build_data_samples(root: str | Path, config: How2Config | None = None) -> dict[str, str]:
    """Regenerate ``data_samples/how2``: ``tokenizer.json``, the low-resource splits
    (:data:`LOW_RESOURCE`) and the hard ones (:data:`HARD`, ``hard_<split>``). Returns the sha256 of every file written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = config or How2Config()
    build_tokenizer(config).save(str(root / "tokenizer.json"))
    for name, (n, seed) in LOW_RESOURCE.items():
        write_split(generate_split("target", n, seed, config, prefix=f"lr_{name}"), root, name)
    for name, (n, seed) in HARD.items():
        write_split(generate_split("target_hard", n, seed, config, prefix=f"hard_{name}"), root,
                    f"hard_{name}")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.iterdir()) if p.is_file() and p.suffix in (".json", ".jsonl", ".npz")}


if __name__ == "__main__":  # python -m readpvla.data.how2 data_samples/how2
    import sys

    for name, digest in build_data_samples(sys.argv[1] if len(sys.argv) > 1 else
                                           "data_samples/how2").items():
        print(f"{digest}  {name}")
