r"""A seeded benchmark of rendered videos for text-video retrieval and action recognition.

Short RGB videos (default 8 frames of 32 x 32 px) of coloured shapes doing one of 24 actions over
static clutter and a slowly moving background, written in the formats a real user drops in
(:mod:`readpvla.data.videotext`): MSR-VTT-style JSON (videos, captions, splits), a class list
plus per-video label files, and per-video ``uint8 [T, H, W, 3]`` ``.npz`` frames. It stands in
for MSR-VTT (retrieval) and Kinetics / UCF / HMDB / SSv2 (recognition), offline.

**Order matters.** 18 of the 24 classes form 9 *order-only pairs*: the partner of a class is the
class whose videos are its videos played backwards (left to right / right to left, up / down,
growing / shrinking, appearing / disappearing, clockwise / counterclockwise, closer / away,
towards / away from each other, covering / uncovering, filling / emptying). A video of the second
class of a pair *is* a rendering of the first class's motion with the frame order reversed, so
the two classes have the same distribution of frame bags: a frame-bag model (CLIP4Clip mean
pooling) cannot beat chance between partners. The other 6 classes are their own reverse
(bouncing, shaking, staying still, passing in front of / behind a bar, blinking). See
:data:`ACTIONS`; :func:`reverse_script` and :func:`render` make the reversal exact:
``render(reverse_script(s)) == render(s)[::-1]`` for every script ``s``.

**A video** is drawn from a hidden *script* (written to ``latent/{split}.jsonl``, for analysis
only; :func:`render` re-renders it bit for bit): one or two objects (shape: square, circle,
triangle, cross, ring, diamond; colour: red, green, blue, yellow, purple, orange, white; size:
small, medium, large; texture: solid, striped, dotted), their per-frame position, radius,
angle, opacity and fill level, 0-3 static clutter shapes, a bar or a panel for the classes that
need one, a background (gradient, stripes or blobs, translating slowly), the domain's style and
a seed for the camera noise. Rendering is numpy only: signed distance fields with 1 px
antialiasing, composited back to front.

**Captions** come from a grammar: an object phrase (``a small red striped square``, attribute
words optional, synonyms for shapes and sizes) + one of 4-5 verb phrases of the class (``moves
from left to right``, ``slides to the right``, ...) + optional mentions of the clutter and the
background (``... among other shapes on a striped background``). Lower case, no full stop, as
in MSR-VTT. Videos of a ``*_train`` split get ``captions_train`` (5) distinct captions, test
videos ``captions_test`` (1; the MSR-VTT 1k-A protocol).

**Domains** (render styles, :data:`STYLES`): ``source`` (vivid palette, textured backgrounds, no
noise; for pretraining) and three target domains with a visible shift: ``flat`` (pastel
palette, plain pale background, faint background motion), ``noisy`` (camera noise on 2 x 2 px
blocks, per-frame camera jitter and brightness flicker) and ``dark`` (dim, low contrast, blue
tint; the few grey levels left show banding).

**Splits** (per-class counts, :class:`RenderConfig`): ``source_train`` / ``source_test``
(source domain, only the *seen* classes: the zero-shot classes are held out of pretraining),
and per target domain ``{d}_train`` / ``{d}_test`` (all 24 classes). Each split's videos carry
both a retrieval view (``retrieval/{split}.json``) and a recognition view
(``recognition/{split}.txt``). Recognition protocols: K-shot training lists
``recognition/fewshot/{d}_K{K}_seed{s}.txt`` (K = 2, 4, 8, 16; seeds 0-2; nested: the K-shot
set of a seed holds its smaller ones), base-to-novel class splits
``recognition/base_novel/seed{s}.json`` (12 / 12; an order-only pair always stays on one side,
so both base and novel accuracy need temporal order), zero-shot classes
``recognition/zeroshot.json``, and per-class MSTA descriptions
``recognition/descriptions.json`` (8 spatial ``"A video about ..."`` and 8 temporal ``"...
involves the following step: ..."``; the spatial descriptions of partners are identical and
never give the direction away -- they say what one frame shows).

Every random draw comes from ``SeedSequence([seed, ...])`` streams keyed by the split, so writing
some splits gives the same files as writing all of them, and the same seed and config give
byte-identical files (same numpy version; see ``recipe.json``).

Command line::

    python -m readpvla.data.rendered --out ~/.cache/readpvla/rendered          # everything
    python -m readpvla.data.rendered --recipe data_samples/rendered/recipe.json --out DIR

In Python, :func:`ensure` generates the whole benchmark on first use into
``$READPVLA_CACHE/rendered`` (default ``~/.cache/readpvla/rendered``) from the shipped recipe
``data_samples/rendered/recipe.json`` and returns that folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.data.qvh import save_npz, write_annotations

__all__ = ["ACTIONS", "CLASSES", "DOMAINS", "SOURCE", "STYLES", "Action", "RenderConfig",
           "Style", "action", "captions_for", "default_cache_dir", "descriptions", "ensure",
           "generate", "load_recipe", "main", "render", "reverse_script", "sample_script",
           "shipped_dir", "split_digest", "split_names", "export_examples",
           "write_retrieval_json", "DEFAULT_ZEROSHOT"]

FORMAT_VERSION = 1
SOURCE = "source"
DOMAINS = ("flat", "noisy", "dark")
_GENERATOR = "readpvla.data.rendered"


# ------------------------------------------------------------------------------------------------
# the actions
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Action:
    """One class.

    Attributes:
        name: the class name (SSv2 style, ``"moving something from left to right"``); line
            ``label`` of ``classes.txt``.
        key: a short identifier (``"left_to_right"``).
        reverse: the name of the class whose videos are this class's videos played backwards
            (itself for the 6 classes that are their own reverse).
        order_only: True for the 18 classes whose partner differs: they differ from it only by
            frame order.
        motion: the motion that is rendered (the first class of a pair; ``reversed`` says whether
            frames are then reversed).
        reversed: True for the second class of a pair (its videos are ``motion`` backwards).
        verbs: caption clauses; ``{o}`` is the object phrase, ``{o2}`` a second object,
            ``{bar}`` / ``{panel}`` the bar / panel phrase. ``mode:`` prefixes (``"fade:..."``)
            restrict a clause to scripts of that mode.
        visible: 4 noun phrases of what a single frame shows (spatial descriptions).
        steps: 4 alternative step sequences of 3 steps (temporal descriptions).
        n_objects: 1 or 2 described objects.
        size_words: whether captions may name the object's size (not for classes that change it).
    """

    name: str
    key: str
    reverse: str
    order_only: bool
    motion: str
    reversed: bool
    verbs: tuple[str, ...]
    visible: tuple[str, ...]
    steps: tuple[tuple[str, str, str], ...]
    n_objects: int = 1
    size_words: bool = True


def _pair(a: tuple[str, str], b: tuple[str, str], verbs_a: tuple[str, ...],
          verbs_b: tuple[str, ...], visible: tuple[str, ...], steps_a: tuple, steps_b: tuple,
          n_objects: int = 1, size_words: bool = True) -> tuple[Action, Action]:
    (name_a, key_a), (name_b, key_b) = a, b
    return (Action(name_a, key_a, name_b, True, key_a, False, verbs_a, visible, steps_a,
                   n_objects, size_words),
            Action(name_b, key_b, name_a, True, key_a, True, verbs_b, visible, steps_b,
                   n_objects, size_words))


def _single(name: str, key: str, verbs: tuple[str, ...], visible: tuple[str, ...],
            steps: tuple) -> Action:
    return Action(name, key, name, False, key, False, verbs, visible, steps)


ACTIONS: tuple[Action, ...] = (
    *_pair(("moving something from left to right", "left_to_right"),
           ("moving something from right to left", "right_to_left"),
           ("{o} moves from left to right", "{o} slides to the right",
            "{o} travels across the screen to the right", "{o} is moved from the left side to the "
            "right side", "{o} goes rightwards"),
           ("{o} moves from right to left", "{o} slides to the left",
            "{o} travels across the screen to the left", "{o} is moved from the right side to the "
            "left side", "{o} goes leftwards"),
           ("a single shape somewhere along a horizontal line",
            "a coloured object at one of several horizontal positions",
            "one shape at the same height in every frame",
            "an object that may be near either side of the frame"),
           (("the object is near the left edge", "it crosses the middle of the frame",
             "it reaches the right edge"),
            ("a shape sits on the left", "it slides horizontally to the right",
             "it stops on the right"),
            ("the shape starts at the left side", "it moves steadily rightwards",
             "it ends at the right side"),
            ("the object is on the left", "it passes the centre", "it arrives on the right")),
           (("the object is near the right edge", "it crosses the middle of the frame",
             "it reaches the left edge"),
            ("a shape sits on the right", "it slides horizontally to the left",
             "it stops on the left"),
            ("the shape starts at the right side", "it moves steadily leftwards",
             "it ends at the left side"),
            ("the object is on the right", "it passes the centre", "it arrives on the left"))),
    *_pair(("moving something up", "up"), ("moving something down", "down"),
           ("{o} moves up", "{o} rises", "{o} goes upwards", "{o} slides up to the top",
            "{o} is lifted up"),
           ("{o} moves down", "{o} falls", "{o} goes downwards", "{o} slides down to the bottom",
            "{o} sinks down"),
           ("a single shape somewhere along a vertical line",
            "a coloured object at one of several heights",
            "one shape that keeps the same horizontal position",
            "an object that may be high or low in the frame"),
           (("the object is near the bottom", "it moves upwards", "it reaches the top"),
            ("a shape sits low in the frame", "it rises through the middle",
             "it ends high in the frame"),
            ("the shape starts at the bottom", "it climbs steadily", "it stops near the top"),
            ("the object begins low", "it goes up", "it finishes high up")),
           (("the object is near the top", "it moves downwards", "it reaches the bottom"),
            ("a shape sits high in the frame", "it falls through the middle",
             "it ends low in the frame"),
            ("the shape starts at the top", "it descends steadily", "it stops near the bottom"),
            ("the object begins high", "it goes down", "it finishes low down"))),
    *_pair(("something growing", "grow"), ("something shrinking", "shrink"),
           ("{o} grows", "{o} gets bigger", "{o} expands", "{o} swells up",
            "{o} becomes larger"),
           ("{o} shrinks", "{o} gets smaller", "{o} contracts", "{o} shrivels up",
            "{o} becomes smaller"),
           ("one shape in a fixed place, drawn at some size",
            "a coloured object that can be small or large",
            "a single shape centred on one spot",
            "an object whose size differs between frames"),
           (("the object is small", "it becomes larger", "it is big"),
            ("a shape starts tiny", "it expands in place", "it ends much larger"),
            ("the shape begins at a small size", "its size increases frame by frame",
             "it reaches its largest size"),
            ("a small object sits in one place", "it swells", "it covers more of the frame")),
           (("the object is big", "it becomes smaller", "it is small"),
            ("a shape starts large", "it contracts in place", "it ends much smaller"),
            ("the shape begins at a large size", "its size decreases frame by frame",
             "it reaches its smallest size"),
            ("a large object sits in one place", "it shrinks", "it covers less of the frame")),
           size_words=False),
    *_pair(("something appearing", "appear"), ("something disappearing", "disappear"),
           ("{o} appears", "{o} shows up", "{o} comes into view", "fade:{o} fades in",
            "fade:{o} slowly becomes visible", "pop:{o} pops up", "pop:{o} suddenly appears"),
           ("{o} disappears", "{o} vanishes", "{o} goes out of view", "fade:{o} fades out",
            "fade:{o} slowly becomes invisible", "pop:{o} is suddenly gone",
            "pop:{o} suddenly disappears"),
           ("a shape that is present in some frames and absent in others",
            "a scene with or without a coloured object",
            "a possibly faint coloured shape",
            "an object that is not always visible"),
           (("nothing is there", "a shape starts to show", "the shape is fully visible"),
            ("the spot is empty", "an object fades or pops in", "the object stays visible"),
            ("the scene has no object", "an object becomes visible", "it is clearly seen"),
            ("only the background and clutter are visible", "a new shape shows up",
             "the shape remains in view")),
           (("the shape is fully visible", "it starts to go", "nothing is there"),
            ("an object is visible", "it fades or pops out", "the spot is empty"),
            ("an object is clearly seen", "it becomes invisible", "the scene has no object"),
            ("a shape is in view", "it leaves the scene",
             "only the background and clutter are visible"))),
    *_pair(("turning something clockwise", "clockwise"),
           ("turning something counterclockwise", "counterclockwise"),
           ("{o} turns clockwise", "{o} rotates clockwise", "{o} spins clockwise",
            "{o} is turned to the right like a clock hand"),
           ("{o} turns counterclockwise", "{o} rotates anticlockwise",
            "{o} spins counter-clockwise", "{o} is turned to the left against the clock"),
           ("a single shape at some tilt", "a coloured object seen at several angles",
            "one rotated shape in a fixed place", "a tilted object in the frame"),
           (("the object is at its starting angle", "it turns the way a clock hand moves",
             "it ends rotated clockwise"),
            ("a shape is tilted", "it rotates clockwise", "it stops at an angle further "
             "clockwise"),
            ("the shape stays in place", "its top swings to the right",
             "it has turned clockwise"),
            ("the object points one way", "it spins in the direction of a clock",
             "it points further clockwise")),
           (("the object is at its starting angle", "it turns against the way a clock hand "
             "moves", "it ends rotated counterclockwise"),
            ("a shape is tilted", "it rotates counterclockwise", "it stops at an angle "
             "further counterclockwise"),
            ("the shape stays in place", "its top swings to the left",
             "it has turned counterclockwise"),
            ("the object points one way", "it spins against the direction of a clock",
             "it points further counterclockwise"))),
    *_pair(("moving something closer", "closer"), ("moving something away", "away"),
           ("{o} comes closer", "{o} moves towards the camera", "{o} approaches the viewer",
            "{o} comes nearer and nearer"),
           ("{o} moves away", "{o} recedes into the distance",
            "{o} moves away from the camera", "{o} goes further and further away"),
           ("one shape that is small when high and large when low",
            "a coloured object at some distance from the camera",
            "a single shape on a path between the top and the bottom",
            "an object seen at some depth"),
           (("the object is small and high, far away", "it moves down and gets bigger",
             "it is large and low, near the camera"),
            ("a distant shape appears small", "it approaches", "it looks big and close"),
            ("the shape starts far from the camera", "it comes nearer",
             "it ends right in front of the camera"),
            ("a tiny object is in the distance", "it grows as it comes down the frame",
             "it is close and large")),
           (("the object is large and low, near the camera", "it moves up and gets smaller",
             "it is small and high, far away"),
            ("a close shape appears big", "it recedes", "it looks small and distant"),
            ("the shape starts right in front of the camera", "it goes further away",
             "it ends far from the camera"),
            ("a big object is close by", "it shrinks as it goes up the frame",
             "it is far away and small")),
           size_words=False),
    *_pair(("moving two things towards each other", "together"),
           ("moving two things away from each other", "apart"),
           ("{o} and {o2} move towards each other", "{o} and {o2} come together",
            "{o} and {o2} get closer to each other", "{o} and {o2} meet in the middle"),
           ("{o} and {o2} move away from each other", "{o} and {o2} move apart",
            "{o} and {o2} separate", "{o} and {o2} drift apart from the middle"),
           ("two shapes at some distance from each other",
            "a pair of coloured objects on one horizontal line",
            "two objects at a small or a large distance from each other",
            "two different shapes, either side by side or separated"),
           (("two shapes are far apart", "they move towards each other",
             "they end side by side"),
            ("two objects sit at opposite sides", "they slide together",
             "they almost touch in the middle"),
            ("the shapes start at the edges", "the gap between them closes",
             "they meet"),
            ("two things are separated", "they approach one another",
             "they are next to each other")),
           (("two shapes are side by side", "they move away from each other",
             "they end far apart"),
            ("two objects almost touch in the middle", "they slide apart",
             "they sit at opposite sides"),
            ("the shapes start together", "the gap between them widens",
             "they reach the edges"),
            ("two things are next to each other", "they leave one another",
             "they are separated")),
           n_objects=2),
    *_pair(("covering something", "cover"), ("uncovering something", "uncover"),
           ("{panel} slides over {o}", "{o} is covered by {panel}", "{panel} covers {o}",
            "{o} gets hidden under {panel}"),
           ("{panel} slides off {o}", "{o} is uncovered", "{panel} moves away and reveals {o}",
            "{o} is revealed from under {panel}"),
           ("a coloured shape and a plain panel",
            "an object that may be partly hidden by a panel",
            "a panel next to or over a shape", "a shape and a sliding cover"),
           (("a shape is in view", "a panel slides over it", "the shape is hidden by the panel"),
            ("an object is visible", "a cover moves in from the side", "the cover hides it"),
            ("the shape can be seen", "the panel reaches it", "it can no longer be seen"),
            ("a panel is out of the way", "it slides onto the object", "only the panel shows")),
           (("a panel hides a shape", "the panel slides away", "the shape is in view"),
            ("a cover hides an object", "the cover moves out to the side", "the object is "
             "visible"),
            ("the shape cannot be seen", "the panel leaves it", "it can be seen again"),
            ("only the panel shows", "it slides off the object", "the panel is out of the way"))),
    *_pair(("filling something", "fill"), ("emptying something", "empty"),
           ("{o} fills up", "{o} is filled with colour from the bottom", "{o} gradually fills",
            "colour rises inside {o}"),
           ("{o} empties", "{o} is emptied from the top down", "{o} gradually drains",
            "the colour inside {o} goes down"),
           ("an outlined shape partly filled with colour",
            "a container shape with some colour inside",
            "a shape whose lower part is coloured", "an outline holding some colour"),
           (("an outlined shape is empty", "colour rises inside it from the bottom",
             "the shape is full"),
            ("a container is nearly empty", "the level goes up", "it is filled to the top"),
            ("the outline holds little colour", "more and more of it is coloured",
             "it is completely coloured"),
            ("the shape is hollow", "it fills halfway", "it is full of colour")),
           (("an outlined shape is full", "the colour sinks inside it towards the bottom",
             "the shape is empty"),
            ("a container is full", "the level goes down", "it is nearly empty"),
            ("the outline is completely coloured", "less and less of it is coloured",
             "it holds little colour"),
            ("the shape is full of colour", "it drains halfway", "it is hollow"))),
    _single("something bouncing", "bounce",
            ("{o} bounces", "{o} bounces up and down", "{o} hops", "{o} jumps up and lands "
             "again"),
            ("a single shape above a resting point", "a coloured object low or high in the "
             "frame", "one shape near a floor", "an object in mid-air or on the ground"),
            (("the object rests low", "it jumps up", "it falls back down"),
             ("a shape is near the floor", "it goes up into the air", "it lands again"),
             ("the ball-like object starts low", "it rises and slows down",
              "it drops back and bounces"),
             ("an object sits on the ground", "it leaps", "it comes down again"))),
    _single("shaking something", "shake",
            ("{o} shakes", "{o} jiggles from side to side", "{o} trembles", "{o} wobbles "
             "back and forth"),
            ("a single shape at almost the same place in every frame",
             "a coloured object slightly shifted", "one slightly blurred shape",
             "an object near one spot"),
            (("the object is in one place", "it jerks to one side", "it jerks back, again "
              "and again"),
             ("a shape sits still", "it starts to tremble", "it keeps shaking"),
             ("an object is centred on one spot", "it moves a little left and right",
              "it never leaves the spot"),
             ("the shape is steady", "it wobbles", "it wobbles back"))),
    _single("something staying still", "still",
            ("{o} stays still", "{o} does not move", "{o} sits still", "{o} rests in one "
             "place"),
            ("a single shape at exactly the same place in every frame",
             "a coloured object at rest", "one motionless shape",
             "an object fixed in one spot"),
            (("the object is in place", "nothing moves except the background",
              "the object is still in the same place"),
             ("a shape sits there", "it stays put", "it has not moved"),
             ("an object rests", "time passes", "it is still resting"),
             ("the shape is seen", "it remains where it is", "it ends where it began"))),
    _single("passing something in front of a bar", "front",
            ("{o} passes in front of {bar}", "{o} moves across in front of {bar}",
             "{o} slides past {bar} in front of it", "{o} crosses over {bar}"),
            ("a shape and a vertical bar, the shape drawn over the bar",
             "a coloured object on top of a bar", "a bar and a shape in front of it",
             "a fully visible shape near a vertical bar"),
            (("the object is on one side of a bar", "it moves over the bar, hiding part of it",
              "it comes out on the other side"),
             ("a shape approaches a bar", "it passes in front of the bar",
              "it moves on past the bar"),
             ("an object is beside a pillar", "it crosses in front of the pillar",
              "it leaves the pillar behind"),
             ("the shape is next to a bar", "it covers the bar for a moment",
              "it is on the far side"))),
    _single("passing something behind a bar", "behind",
            ("{o} passes behind {bar}", "{o} moves behind {bar}",
             "{o} disappears behind {bar} and comes out the other side",
             "{o} slides past {bar} behind it"),
            ("a shape and a vertical bar, the bar drawn over the shape",
             "a coloured object partly hidden by a bar", "a bar in front of a shape",
             "a shape cut off by a vertical bar"),
            (("the object is on one side of a bar", "it slides behind the bar and is hidden",
              "it comes out on the other side"),
             ("a shape approaches a bar", "it goes behind the bar",
              "it reappears past the bar"),
             ("an object is beside a pillar", "the pillar hides it", "it emerges again"),
             ("the shape is next to a bar", "it vanishes behind the bar for a moment",
              "it is on the far side"))),
    _single("something blinking", "blink",
            ("{o} blinks", "{o} flashes on and off", "{o} flickers", "{o} keeps appearing "
             "and disappearing"),
            ("a shape that is sometimes missing", "a coloured object that flashes",
             "a shape in one spot, on or off", "an object that is visible or not"),
            (("the object is visible", "it vanishes for a moment", "it shows again, over and "
              "over"),
             ("a shape is on", "it turns off", "it turns on again"),
             ("an object flashes", "it goes dark", "it flashes again"),
             ("the shape is shown", "it is hidden", "it is shown again"))),
)
CLASSES: tuple[str, ...] = tuple(a.name for a in ACTIONS)
_BY_NAME = {a.name: a for a in ACTIONS}
_BY_KEY = {a.key: a for a in ACTIONS}
DEFAULT_ZEROSHOT = ("filling something", "emptying something", "something blinking",
                    "passing something behind a bar")


def action(name_or_key: str) -> Action:
    """The :class:`Action` with this class name or key."""
    got = _BY_NAME.get(name_or_key) or _BY_KEY.get(name_or_key)
    if got is None:
        raise KeyError(f"unknown action {name_or_key!r}")
    return got


# ------------------------------------------------------------------------------------------------
# objects, palettes, styles
# ------------------------------------------------------------------------------------------------
SHAPES = ("square", "circle", "triangle", "cross", "ring", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230),
           "yellow": (235, 215, 40), "purple": (150, 60, 200), "orange": (245, 140, 30),
           "white": (240, 240, 240)}
SIZES = {"small": 0.12, "medium": 0.16, "large": 0.21}        # radius / frame size
TEXTURES = ("solid", "striped", "dotted")
_NEUTRAL = {"grey": (150, 150, 150), "white": (225, 225, 225), "brown": (140, 90, 50)}
# vertical extent (top, bottom) of a shape in its local units, for fill levels
_EXTENT = {"square": (-0.85, 0.85), "circle": (-1.0, 1.0), "triangle": (-1.0, 0.5),
           "diamond": (-1.0, 1.0), "cross": (-1.0, 1.0), "ring": (-1.0, 1.0)}


@dataclass(frozen=True)
class Style:
    """A domain's render style.

    Attributes:
        pastel: mix of the object palette towards white (0 = vivid).
        background: ``"textured"`` (gradient / stripes / blobs in dark-to-mid tones) or
            ``"plain"`` (pale, nearly uniform).
        motion: scale of the background speed.
        gain, offset, tint: ``pixel = (pixel * gain + offset) * tint`` (per channel).
        noise: std of the camera noise (grey levels), drawn on ``noise_block`` px blocks.
        jitter: max per-frame camera shift (px).
        flicker: max per-frame relative brightness change.
    """

    pastel: float = 0.0
    background: str = "textured"
    motion: float = 1.0
    gain: float = 1.0
    offset: float = 0.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 0.0
    noise_block: int = 1
    jitter: int = 0
    flicker: float = 0.0


STYLES: dict[str, Style] = {
    SOURCE: Style(),
    "flat": Style(pastel=0.5, background="plain", motion=0.5),
    "noisy": Style(noise=14.0, noise_block=2, jitter=1, flicker=0.1),
    "dark": Style(gain=0.38, offset=8.0, tint=(0.8, 0.9, 1.25)),
}


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderConfig:
    """Every knob of the generator (stored in ``recipe.json``). Counts are per class.

    Attributes:
        frames: frames per video (T >= 2).
        size: frame height = width in px (>= 16, even: H.264 export needs even sizes).
        clutter_min, clutter_max: static distractor shapes per video.
        background_speed: max background translation, px per frame (times the style's motion).
        noise: extra camera noise std for every domain (grey levels; the styles add theirs).
        domains: target domains, a subset of :data:`DOMAINS`.
        n_source_train, n_source_test: videos per seen class in the source splits.
        n_train, n_test: videos per class in each target domain's splits.
        captions_train, captions_test: distinct captions per video (train / test splits).
        shots: K of the K-shot training lists (each <= n_train).
        fewshot_seeds: seeds of the K-shot lists.
        base_novel_seeds, n_base: base-to-novel class splits and base classes per split.
        zeroshot_classes: classes held out of the source splits (zero-shot evaluation).
    """

    frames: int = 8
    size: int = 32
    clutter_min: int = 0
    clutter_max: int = 3
    background_speed: float = 0.6
    noise: float = 0.0
    domains: tuple[str, ...] = DOMAINS
    n_source_train: int = 120
    n_source_test: int = 10
    n_train: int = 20
    n_test: int = 8
    captions_train: int = 5
    captions_test: int = 1
    shots: tuple[int, ...] = (2, 4, 8, 16)
    fewshot_seeds: int = 3
    base_novel_seeds: int = 3
    n_base: int = 12
    zeroshot_classes: tuple[str, ...] = DEFAULT_ZEROSHOT

    def __post_init__(self) -> None:
        if not 2 <= self.frames <= 64:
            raise ValueError(f"frames must be in [2, 64], got {self.frames}")
        if not 16 <= self.size <= 256 or self.size % 2:
            raise ValueError(f"size must be even and in [16, 256], got {self.size}")
        if not 0 <= self.clutter_min <= self.clutter_max <= 8:
            raise ValueError("need 0 <= clutter_min <= clutter_max <= 8")
        if self.background_speed < 0 or self.noise < 0:
            raise ValueError("background_speed and noise must be >= 0")
        bad = [d for d in self.domains if d not in DOMAINS]
        if bad or len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains must be distinct names from {DOMAINS}, got {self.domains}")
        for name in ("n_source_train", "n_source_test", "n_train", "n_test"):
            if not 1 <= getattr(self, name) <= 10_000:
                raise ValueError(f"{name} must be in [1, 10000], got {getattr(self, name)}")
        if not (1 <= self.captions_train <= 20 and 1 <= self.captions_test <= 20):
            raise ValueError("captions_train and captions_test must be in [1, 20]")
        if any(not 1 <= k <= self.n_train for k in self.shots) or len(set(self.shots)) != len(
                self.shots):
            raise ValueError(f"shots must be distinct K in [1, n_train={self.n_train}], got "
                             f"{self.shots}")
        if not 0 <= self.fewshot_seeds <= 100 or not 0 <= self.base_novel_seeds <= 100:
            raise ValueError("fewshot_seeds and base_novel_seeds must be in [0, 100]")
        if not 1 <= self.n_base < len(ACTIONS):
            raise ValueError(f"n_base must be in [1, {len(ACTIONS) - 1}]")
        bad = [c for c in self.zeroshot_classes if c not in _BY_NAME]
        if bad:
            raise ValueError(f"unknown zeroshot_classes {bad}")
        if len(set(self.zeroshot_classes)) >= len(ACTIONS):
            raise ValueError("at least one class must be seen")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RenderConfig:
        """The inverse of :meth:`to_json` (unknown keys raise)."""
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ValueError(f"unknown RenderConfig fields {bad}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def seen_classes(self) -> tuple[str, ...]:
        """Classes in the source splits (all but :attr:`zeroshot_classes`), in label order."""
        return tuple(c for c in CLASSES if c not in self.zeroshot_classes)


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _r4(x: Any) -> Any:
    """Round to 4 decimals, as plain floats (a scalar, or a list if the values vary)."""
    a = np.round(np.asarray(x, dtype=np.float64), 4)
    if a.ndim == 0 or np.all(a == a.flat[0]):
        return float(a.flat[0])
    return [float(v) for v in a]


def _per_frame(v: Any, t: int) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim == 0:
        return np.full(t, a, dtype=np.float32)
    if a.shape != (t,):
        raise ValueError(f"a per-frame value has shape {a.shape}, expected ({t},)")
    return a


def _background(bg: dict[str, Any], t: int, s: int) -> np.ndarray:
    """``float32 [T, S, S, 3]``: ``rgb1 + (rgb2 - rgb1) * w`` with ``w`` a mix of travelling
    sinusoids (optionally sharpened into stripes)."""
    g = (np.arange(s, dtype=np.float32) + 0.5) / s
    x, y = g[None, None, :], g[None, :, None]
    frame = np.arange(t, dtype=np.float32)[:, None, None]
    vx, vy = (np.float32(v) / s for v in bg["velocity"])     # image units per frame
    m = np.zeros((t, s, s), np.float32)
    for wave in bg["waves"]:
        cx, cy = np.float32(math.cos(wave["angle"])), np.float32(math.sin(wave["angle"]))
        proj = (x - vx * frame) * cx + (y - vy * frame) * cy
        m = m + np.sin(np.float32(2 * math.pi * wave["freq"]) * proj + np.float32(wave["phase"]))
    m = m / np.float32(len(bg["waves"]))
    if bg["sharp"] > 0:
        k = np.float32(bg["sharp"])
        m = np.tanh(k * m) / np.tanh(k)
    w = (np.float32(0.5) + np.float32(0.5) * m)[..., None]
    c1, c2 = np.asarray(bg["rgb1"], np.float32), np.asarray(bg["rgb2"], np.float32)
    return c1 + (c2 - c1) * w


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (approximate, local units; < 0 inside) of a unit shape."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if shape == "circle":
        return np.hypot(u, v) - 1.0
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.7) - 0.3
    if shape == "diamond":
        return (np.abs(u) + np.abs(v) - 1.0) * np.float32(1 / math.sqrt(2))
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au - 0.95, av - 0.32), np.maximum(au - 0.32, av - 0.95))
    if shape == "triangle":                 # apex up (image y points down), circumradius 1
        d = v - 0.5                                                     # bottom edge
        for phi in (math.radians(-30.0), math.radians(210.0)):
            d = np.maximum(d, u * np.float32(math.cos(phi)) + v * np.float32(math.sin(phi))
                           - 0.5)
        return d
    raise ValueError(f"unknown shape {shape!r}")


def _draw(img: np.ndarray, sp: dict[str, Any]) -> None:
    """Composite one sprite onto ``img`` (``[T, S, S, 3]``, in place)."""
    t, s = img.shape[0], img.shape[1]
    g = (np.arange(s, dtype=np.float32) + 0.5) / s
    x = _per_frame(sp["x"], t)[:, None, None]
    y = _per_frame(sp["y"], t)[:, None, None]
    alpha = _per_frame(sp.get("alpha", 1.0), t)[:, None, None]
    dx, dy = g[None, None, :] - x, g[None, :, None] - y                          # (T, S, S)
    rgb = np.asarray(sp["rgb"], np.float32)
    if sp["shape"] == "rect":
        hw, hh = sp["half"]
        d_px = np.maximum(np.abs(dx) - np.float32(hw), np.abs(dy) - np.float32(hh)) * s
        cov = np.clip(np.float32(0.5) - d_px, 0.0, 1.0)
        img += (rgb - img) * (cov * alpha)[..., None]
        return
    r = _per_frame(sp["r"], t)[:, None, None]
    ang = _per_frame(sp.get("angle", 0.0), t)[:, None, None]
    c, sn = np.cos(ang), np.sin(ang)
    u = (c * dx + sn * dy) / r                      # local coordinates: rotated by -angle
    v = (-sn * dx + c * dy) / r
    d_px = _sdf(sp["shape"], u, v) * r * s
    cov = np.clip(np.float32(0.5) - d_px, 0.0, 1.0)
    shade = np.ones_like(cov)
    if sp["texture"] == "striped":
        shade = np.where(np.floor(u * np.float32(2.2)) % 2 == 0, 1.0, 0.4).astype(np.float32)
    elif sp["texture"] == "dotted":
        gu = u / np.float32(0.75)
        gv = v / np.float32(0.75)
        dist = np.hypot(gu - np.round(gu), gv - np.round(gv)) * np.float32(0.75)
        dot = np.clip((np.float32(0.25) - dist) * r * s + np.float32(0.5), 0.0, 1.0)
        shade = np.float32(1.0) - np.float32(0.6) * dot
    if sp.get("fill") is not None:
        top, bottom = _EXTENT[sp["shape"]]
        level = _per_frame(sp["fill"], t)[:, None, None]
        thresh = np.float32(bottom) - level * np.float32(bottom - top)
        filled = np.clip((v - thresh) * r * s + np.float32(0.5), 0.0, 1.0)
        inner = np.clip(np.float32(0.5) - (d_px + np.float32(1.3)), 0.0, 1.0)
        outline = cov - inner
        cov = np.maximum(np.maximum(outline, inner * filled), np.float32(0.3) * cov)
    a = (cov * alpha)[..., None]
    img += (rgb * shade[..., None] - img) * a


def _apply_style(img: np.ndarray, st: dict[str, Any], noise_seed: int) -> np.ndarray:
    t, s = img.shape[0], img.shape[1]
    img = img * np.float32(st["gain"]) + np.float32(st["offset"])
    img = img * np.asarray(st["tint"], np.float32)
    if st.get("flicker") is not None:
        img = img * _per_frame(st["flicker"], t)[:, None, None, None]
    if st.get("jitter") is not None:
        out = np.empty_like(img)
        pad = max(1, max(abs(int(v)) for pair in st["jitter"] for v in pair))
        padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        for k, (jx, jy) in enumerate(st["jitter"]):
            out[k] = padded[k, pad - jy: pad - jy + s, pad - jx: pad - jx + s]
        img = out
    if st["noise"] > 0:
        b = int(st["noise_block"])
        n = -(-s // b)
        noise = np.random.default_rng(noise_seed).standard_normal((t, n, n, 3), np.float32)
        if b > 1:
            noise = noise.repeat(b, axis=1).repeat(b, axis=2)[:, :s, :s]
        img = img + noise * np.float32(st["noise"])
    return img


def render(script: dict[str, Any]) -> np.ndarray:
    """Render a script (:func:`sample_script`, or a line of ``latent/{split}.jsonl``) to
    ``uint8 [T, S, S, 3]``. Deterministic: the same script gives the same bytes. A script with
    ``time_reversed`` true gives the frames of the same script without it, in reverse order."""
    t, s = int(script["frames"]), int(script["size"])
    img = _background(script["background"], t, s)
    for sp in sorted(script["sprites"], key=lambda q: q["z"]):
        _draw(img, sp)
    img = _apply_style(img, script["style"], int(script["noise_seed"]))
    frames = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if script["time_reversed"]:
        frames = frames[::-1]
    return np.ascontiguousarray(frames)


def reverse_script(script: dict[str, Any]) -> dict[str, Any]:
    """The script of the same rendering played backwards: class -> its ``reverse`` partner,
    ``time_reversed`` flipped, everything else equal. ``render(reverse_script(s))`` equals
    ``render(s)[::-1]`` exactly."""
    out = json.loads(json.dumps(script))
    act = _BY_NAME[script["class"]]
    out["class"] = act.reverse
    out["label"] = CLASSES.index(act.reverse)
    out["time_reversed"] = not script["time_reversed"]
    return out


# ------------------------------------------------------------------------------------------------
# sampling scripts
# ------------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> list[int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, w = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, w, p), (q, v, p), (p, v, w), (p, q, v), (w, p, v), (v, p, q)][i]
    return [int(round(255 * c)) for c in (r, g, b)]


def _palette_rgb(colour: str, style: Style) -> list[int]:
    base = np.asarray(COLOURS[colour], np.float64)
    return [int(round(c)) for c in base + (255.0 - base) * style.pastel]


def _sample_background(rng: np.random.Generator, style: Style, cfg: RenderConfig
                       ) -> dict[str, Any]:
    speed = float(rng.uniform(0.3, 1.0)) * cfg.background_speed * style.motion
    heading = float(rng.uniform(0, 2 * math.pi))
    velocity = [_r4(speed * math.cos(heading)), _r4(speed * math.sin(heading))]
    if style.background == "plain":
        h = float(rng.uniform(0, 1))
        rgb1 = _hsv(h, float(rng.uniform(0.05, 0.15)), float(rng.uniform(0.78, 0.88)))
        rgb2 = [max(0, c - int(rng.integers(10, 22))) for c in rgb1]
        return {"kind": "plain", "rgb1": rgb1, "rgb2": rgb2, "sharp": 0.0, "velocity": velocity,
                "waves": [{"angle": _r4(rng.uniform(0, 2 * math.pi)),
                           "freq": _r4(rng.uniform(0.4, 0.8)),
                           "phase": _r4(rng.uniform(0, 2 * math.pi))}]}
    kind = str(rng.choice(["gradient", "stripes", "blobs"]))
    h1 = float(rng.uniform(0, 1))
    h2 = (h1 + float(rng.uniform(0.1, 0.4))) % 1.0
    rgb1 = _hsv(h1, float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.22, 0.4)))
    rgb2 = _hsv(h2, float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.35, 0.55)))
    angle = float(rng.uniform(0, 2 * math.pi))
    if kind == "gradient":
        waves = [{"angle": _r4(angle), "freq": _r4(rng.uniform(0.4, 0.9)),
                  "phase": _r4(rng.uniform(0, 2 * math.pi))}]
        sharp = 0.0
    elif kind == "stripes":
        waves = [{"angle": _r4(angle), "freq": _r4(rng.uniform(2.5, 4.0)),
                  "phase": _r4(rng.uniform(0, 2 * math.pi))}]
        sharp = 3.0
    else:
        waves = [{"angle": _r4(angle + k * 2.1), "freq": _r4(rng.uniform(1.2, 2.2)),
                  "phase": _r4(rng.uniform(0, 2 * math.pi))} for k in range(3)]
        sharp = 0.0
    return {"kind": kind, "rgb1": rgb1, "rgb2": rgb2, "sharp": sharp, "velocity": velocity,
            "waves": waves}


def _sample_object(rng: np.random.Generator, style: Style, shapes: tuple[str, ...] = SHAPES,
                   sizes: tuple[str, ...] = tuple(SIZES), not_like: dict | None = None
                   ) -> dict[str, Any]:
    while True:
        o = {"shape": str(rng.choice(shapes)), "colour": str(rng.choice(list(COLOURS))),
             "size": str(rng.choice(sizes)), "texture": str(rng.choice(TEXTURES))}
        if not_like is None or (o["shape"], o["colour"]) != (not_like["shape"],
                                                              not_like["colour"]):
            break
    o["rgb"] = _palette_rgb(o["colour"], style)
    return o


def _lerp(a: float, b: float, s: np.ndarray) -> np.ndarray:
    return a + (b - a) * s


def _motion(rng: np.random.Generator, key: str, t: int, style: Style
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sprites (objects, bar, panel) of the canonical motion ``key``, and extra script fields."""
    s = np.linspace(0.0, 1.0, t)
    u = rng.uniform
    extra: dict[str, Any] = {}
    rot_shapes = ("triangle", "square", "cross")
    fill_shapes = ("square", "circle", "triangle", "diamond")
    two_sizes = ("small", "medium")
    o = _sample_object(rng, style, shapes=rot_shapes if key == "clockwise" else
                       fill_shapes if key == "fill" else SHAPES,
                       sizes=two_sizes if key in ("together", "front", "behind") else
                       ("medium", "large") if key == "fill" else tuple(SIZES))
    if key == "fill":
        o["texture"] = "solid"               # the fill level is the texture
    r0 = SIZES[o["size"]] * (0.75 if key == "together" else 1.0)
    m = r0 + 0.03
    obj: dict[str, Any] = {**o, "role": "object", "z": 10, "angle": 0.0, "alpha": 1.0}
    sprites = [obj]
    if o["shape"] in rot_shapes and key != "clockwise":
        obj["angle"] = _r4(u(-0.3, 0.3))
    if key == "left_to_right":
        obj.update(x=_r4(_lerp(u(m, 0.38), u(0.62, 1 - m), s)), y=_r4(u(0.3, 0.7)), r=r0)
    elif key == "up":
        obj.update(x=_r4(u(0.3, 0.7)), y=_r4(_lerp(u(0.62, 1 - m), u(m, 0.38), s)), r=r0)
    elif key == "grow":
        big = r0 * u(1.15, 1.4)
        c = (big + 0.02, 1 - big - 0.02)
        obj.update(x=_r4(u(*c)), y=_r4(u(*c)), r=_r4(_lerp(r0 * u(0.35, 0.55), big, s)))
    elif key == "appear":
        mode = str(rng.choice(["fade", "pop"]))
        extra["mode"] = mode
        k = np.arange(t)
        if mode == "fade":
            k0 = int(rng.integers(0, max(1, t // 3)))
            k1 = int(rng.integers(min(max(k0 + 1, (2 * t) // 3), t - 1), t))
            alpha = np.clip((k - k0) / (k1 - k0), 0.0, 1.0)
        else:
            alpha = (k >= int(rng.integers(1, t))).astype(np.float64)
        obj.update(x=_r4(u(m, 1 - m)), y=_r4(u(m, 1 - m)), r=r0, alpha=_r4(alpha))
    elif key == "clockwise":
        a0 = u(0, 2 * math.pi)
        obj.update(x=_r4(u(0.3, 0.7)), y=_r4(u(0.3, 0.7)), r=r0,
                   angle=_r4(_lerp(a0, a0 + u(0.7, 1.3), s)))
    elif key == "closer":
        x0 = u(0.25, 0.75)
        big = r0 * u(1.1, 1.3)
        obj.update(x=_r4(_lerp(x0, float(np.clip(x0 + u(-0.1, 0.1), 0.2, 0.8)), s)),
                   y=_r4(_lerp(u(0.2, 0.32), u(0.66, min(0.8, 1 - 0.6 * big)), s)),
                   r=_r4(_lerp(r0 * u(0.4, 0.55), big, s)))
    elif key == "together":
        o2 = _sample_object(rng, style, sizes=two_sizes, not_like=o)
        ra, rb = r0, SIZES[o2["size"]] * 0.75      # smaller, so that they travel further
        yc = u(0.35, 0.65)
        meet, gap = u(0.44, 0.56), u(0.01, 0.05)
        xa0, xb0 = u(0.6 * ra, ra + 0.04), u(1 - rb - 0.04, 1 - 0.6 * rb)
        obj.update(x=_r4(_lerp(xa0, meet - gap / 2 - ra, s)), y=_r4(yc + u(-0.04, 0.04)), r=ra)
        sprites.append({**o2, "role": "object2", "z": 11, "angle": 0.0, "alpha": 1.0,
                        "x": _r4(_lerp(xb0, meet + gap / 2 + rb, s)),
                        "y": _r4(yc + u(-0.04, 0.04)), "r": rb})
        if rng.random() < 0.5:                 # mirror: the first object comes from the right
            for sp in (obj, sprites[1]):
                sp["x"] = _r4(1 - np.asarray(sp["x"]))
    elif key == "cover":
        cx, cy = u(0.3, 0.7), u(0.3, 0.7)
        half = r0 + u(0.04, 0.07)
        side = 1 if rng.random() < 0.5 else -1
        start = 0.5 + side * (0.5 + half + 0.01)
        arrive = u(0.7, 1.0)
        px = _lerp(start, cx, np.clip(s / arrive, 0.0, 1.0))
        colour = str(rng.choice(list(_NEUTRAL)))
        obj.update(x=_r4(cx), y=_r4(cy), r=r0)
        sprites.append({"role": "panel", "shape": "rect", "colour": colour,
                        "rgb": _palette_rgb_neutral(colour, style), "z": 20,
                        "half": [_r4(half), _r4(half)], "x": _r4(px), "y": _r4(cy + u(-0.02, 0.02))})
    elif key == "fill":
        obj.update(x=_r4(u(m, 1 - m)), y=_r4(u(m, 1 - m)), r=r0, angle=0.0,
                   fill=_r4(_lerp(u(0.0, 0.15), u(0.85, 1.0), s)))
    elif key == "bounce":
        x0 = u(0.3, 0.7)
        floor, height = u(0.66, 1 - m), u(0.25, 0.4)
        nb = int(rng.integers(1, 3))
        obj.update(x=_r4(_lerp(x0, x0 + u(-0.12, 0.12), s)),
                   y=_r4(floor - height * np.abs(np.sin(math.pi * nb * s))), r=r0)
    elif key == "shake":
        amp = u(0.035, 0.06)
        sign = 1 if rng.random() < 0.5 else -1
        jx = amp * sign * (-1.0) ** np.arange(t) * rng.uniform(0.6, 1.0, t)
        jy = amp * rng.uniform(-0.3, 0.3, t)
        cx, cy = u(0.3, 0.7), u(0.3, 0.7)
        obj.update(x=_r4(cx + jx), y=_r4(cy + jy), r=r0)
    elif key == "still":
        obj.update(x=_r4(u(m, 1 - m)), y=_r4(u(m, 1 - m)), r=r0)
    elif key in ("front", "behind"):
        xb = u(0.42, 0.58)
        hw = r0 + u(-0.03, 0.0)
        side = 1 if rng.random() < 0.5 else -1
        travel = u(0.28, 0.36)
        x0, x1 = xb - side * travel, xb + side * travel
        colour = str(rng.choice(list(_NEUTRAL)))
        obj.update(x=_r4(_lerp(x0, x1, s)), y=_r4(u(0.3, 0.7)), r=r0)
        sprites.append({"role": "bar", "shape": "rect", "colour": colour,
                        "rgb": _palette_rgb_neutral(colour, style),
                        "z": 5 if key == "front" else 20, "half": [_r4(hw), 0.6],
                        "x": _r4(xb), "y": 0.5})
    elif key == "blink":
        run = int(rng.integers(1, 3))
        phase = int(rng.integers(0, 2 * run))
        alpha = (((np.arange(t) + phase) // run) % 2 == 0).astype(np.float64)
        obj.update(x=_r4(u(m, 1 - m)), y=_r4(u(m, 1 - m)), r=r0, alpha=_r4(alpha))
    else:
        raise ValueError(f"unknown motion {key!r}")
    return sprites, extra


def _palette_rgb_neutral(colour: str, style: Style) -> list[int]:
    base = np.asarray(_NEUTRAL[colour], np.float64)
    return [int(round(c)) for c in base + (255.0 - base) * style.pastel * 0.5]


def sample_script(rng: np.random.Generator, cls: str, domain: str = SOURCE,
                  cfg: RenderConfig | None = None) -> dict[str, Any]:
    """Draw the hidden script of one video of class ``cls`` in ``domain``'s style.

    The motion drawn is the class's canonical one (:attr:`Action.motion`); the second class of
    an order-only pair gets ``time_reversed = True`` (its frames are that motion backwards), a
    class that is its own reverse gets it at random. :func:`render` turns the script into frames.
    """
    cfg = cfg or RenderConfig()
    act = action(cls)
    if domain not in STYLES:
        raise ValueError(f"unknown domain {domain!r}; known: {list(STYLES)}")
    style = STYLES[domain]
    t, s = cfg.frames, cfg.size
    background = _sample_background(rng, style, cfg)
    sprites, extra = _motion(rng, act.motion, t, style)
    clutter = []
    for _ in range(int(rng.integers(cfg.clutter_min, cfg.clutter_max + 1))):
        rc = float(rng.uniform(0.05, 0.08))
        colour = str(rng.choice(list(COLOURS)))
        clutter.append({"role": "clutter", "shape": str(rng.choice(SHAPES)), "colour": colour,
                        "rgb": _palette_rgb(colour, style), "texture": "solid", "z": 1,
                        "x": _r4(rng.uniform(rc, 1 - rc)), "y": _r4(rng.uniform(rc, 1 - rc)),
                        "r": _r4(rc), "angle": _r4(rng.uniform(0, 2 * math.pi)),
                        "alpha": _r4(rng.uniform(0.55, 0.85))})
    st: dict[str, Any] = {"domain": domain, "gain": style.gain, "offset": style.offset,
                          "tint": list(style.tint), "noise": float(np.hypot(style.noise,
                                                                            cfg.noise)),
                          "noise_block": style.noise_block, "jitter": None, "flicker": None}
    if style.jitter:
        st["jitter"] = [[int(v) for v in rng.integers(-style.jitter, style.jitter + 1, 2)]
                        for _ in range(t)]
    if style.flicker:
        st["flicker"] = _r4(1.0 + rng.uniform(-style.flicker, style.flicker, t))
    reverse = act.reversed if act.order_only else bool(rng.random() < 0.5)
    return {"class": act.name, "label": CLASSES.index(act.name), "motion": act.motion,
            "time_reversed": reverse, "frames": t, "size": s, "domain": domain, **extra,
            "background": background, "sprites": clutter + sprites, "style": st,
            "noise_seed": int(rng.integers(0, 2**31 - 1))}


# ------------------------------------------------------------------------------------------------
# captions and descriptions
# ------------------------------------------------------------------------------------------------
_SHAPE_WORDS = {"square": ("square", "box", "block"), "circle": ("circle", "disc", "ball"),
                "triangle": ("triangle",), "cross": ("cross", "plus sign"),
                "ring": ("ring", "hoop", "donut"), "diamond": ("diamond", "rhombus")}
_SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": (), "large": ("large", "big")}
_TEXTURE_WORDS = {"solid": ("plain", "solid"), "striped": ("striped",),
                  "dotted": ("dotted", "spotted")}
_BAR_WORDS = ("bar", "pole", "pillar", "post")
_PANEL_WORDS = ("panel", "cover", "card", "sheet")
_BG_WORDS = {"gradient": ("shaded", "gradient"), "stripes": ("striped",),
             "blobs": ("cloudy", "mottled"), "plain": ("plain", "pale")}
_CLUTTER = (" among other shapes", " next to some other shapes", " while other shapes stay "
            "still", " with a few small shapes around")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _object_phrase(rng: np.random.Generator, o: dict[str, Any], size_words: bool) -> str:
    words = []
    if size_words and _SIZE_WORDS[o["size"]] and rng.random() < 0.7:
        words.append(str(rng.choice(_SIZE_WORDS[o["size"]])))
    if rng.random() < 0.9:
        words.append(o["colour"])
    if o["texture"] != "solid" and rng.random() < 0.7:
        words.append(str(rng.choice(_TEXTURE_WORDS[o["texture"]])))
    elif o["texture"] == "solid" and rng.random() < 0.1:
        words.append(str(rng.choice(_TEXTURE_WORDS["solid"])))
    words.append(str(rng.choice(_SHAPE_WORDS[o["shape"]])))
    return f"{_article(words[0])} {' '.join(words)}"


def _clauses(act: Action, mode: str | None) -> list[str]:
    out = []
    for v in act.verbs:
        if ":" in v.split("{")[0]:
            m, v = v.split(":", 1)
            if m != mode:
                continue
        out.append(v)
    return out


def _one_caption(rng: np.random.Generator, script: dict[str, Any]) -> str:
    act = _BY_NAME[script["class"]]
    by_role = {sp["role"]: sp for sp in script["sprites"]}
    clause = str(rng.choice(_clauses(act, script.get("mode"))))
    fill = {"o": _object_phrase(rng, by_role["object"], act.size_words)}
    if "object2" in by_role:
        fill["o2"] = _object_phrase(rng, by_role["object2"], act.size_words)
    for role, words in (("bar", _BAR_WORDS), ("panel", _PANEL_WORDS)):
        if role in by_role:
            colour = by_role[role]["colour"] + " " if rng.random() < 0.6 else ""
            noun = f"{colour}{rng.choice(words)}"
            fill[role] = f"{_article(noun)} {noun}"
    text = clause.format(**fill)
    n_clutter = sum(sp["role"] == "clutter" for sp in script["sprites"])
    if n_clutter and rng.random() < 0.3:
        text += str(rng.choice(_CLUTTER))
    if rng.random() < 0.3:
        bg = script["background"]
        word = str(rng.choice(_BG_WORDS[bg["kind"]]))
        moving = "slowly moving " if rng.random() < 0.5 else ""
        text += f" on a {moving}{word} background"
    return text


def captions_for(rng: np.random.Generator, script: dict[str, Any], n: int) -> list[str]:
    """``n`` distinct captions of a script from the grammar (fewer only if the grammar runs out
    after 50 draws per caption)."""
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        c = _one_caption(rng, script)
        tries += 1
        if c not in out:
            out.append(c)
    return out


def descriptions(n: int = 8) -> dict[str, dict[str, list[str]]]:
    """Per class ``{"spatial": [...], "temporal": [...]}`` (MSTA's description files), ``n`` of
    each (at most 8). Spatial: ``"A video about ..."`` what a single frame shows -- identical for
    the two classes of an order-only pair. Temporal: ``"<Class> involves the following step:
    first ..., then ..., and finally ...."``. The first two of each list use different phrases."""
    if not 1 <= n <= 8:
        raise ValueError(f"n must be in [1, 8], got {n}")
    out: dict[str, dict[str, list[str]]] = {}
    for act in ACTIONS:
        spatial, temporal = [], []
        for style in range(2):
            for k in range(4):
                v = act.visible[k]
                spatial.append(f"A video about {v}." if style == 0 else
                               f"A video about a simple scene showing {v}.")
                a, b, c = act.steps[k]
                seq = (f"first {a}, then {b}, and finally {c}" if style == 0 else
                       f"{a}; after that {b}; at the end {c}")
                temporal.append(f"{act.name[0].upper()}{act.name[1:]} involves the following "
                                f"step: {seq}.")
        out[act.name] = {"spatial": spatial[:n], "temporal": temporal[:n]}
    return out


# ------------------------------------------------------------------------------------------------
# splits and files
# ------------------------------------------------------------------------------------------------
def split_names(cfg: RenderConfig, which: str | tuple[str, ...] | list[str] | None = None
                ) -> list[str]:
    """Expand a split selection: None/"all", "source", "target", or explicit names."""
    source = ["source_train", "source_test"]
    target = [f"{d}_{p}" for d in cfg.domains for p in ("train", "test")]
    every = source + target
    if which is None or which == "all":
        return every
    if isinstance(which, str):
        which = [w.strip() for w in which.split(",") if w.strip()]
    out: list[str] = []
    for w in which:
        for n in {"source": source, "target": target, "all": every}.get(w, [w]):
            if n not in every:
                raise ValueError(f"unknown split {n!r}; known: {every}")
            if n not in out:
                out.append(n)
    return out


def _split_key(split: str) -> tuple[int, int]:
    domain, part = split.rsplit("_", 1)
    return ((0 if domain == SOURCE else 1 + DOMAINS.index(domain)),
            0 if part == "train" else 1)


def _json_lines_array(items: list[dict[str, Any]]) -> str:
    return ",\n".join(json.dumps(x, ensure_ascii=False) for x in items)


def write_retrieval_json(path: str | Path, videos: list[dict[str, Any]],
                         sentences: list[dict[str, Any]]) -> Path:
    """Write an MSR-VTT-style ``{"videos": [...], "sentences": [...]}`` with one record per line
    (valid JSON; errors of :func:`readpvla.data.videotext.load_retrieval` then name a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ('{"videos": [\n' + _json_lines_array(videos) + '\n],\n"sentences": [\n'
            + _json_lines_array(sentences) + "\n]}\n")
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")


def _fewshot_files(cfg: RenderConfig, domain: str) -> list[str]:
    return [f"recognition/fewshot/{domain}_K{k}_seed{s}.txt"
            for k in cfg.shots for s in range(cfg.fewshot_seeds)]


def _split_files(root: Path, split: str, cfg: RenderConfig) -> list[Path]:
    ids = [line.split()[0] for line in
           (root / "recognition" / f"{split}.txt").read_text(encoding="utf-8").splitlines()]
    files = [root / "retrieval" / f"{split}.json", root / "recognition" / f"{split}.txt",
             root / "latent" / f"{split}.jsonl"]
    domain, part = split.rsplit("_", 1)
    if domain != SOURCE and part == "train":
        files += [root / f for f in _fewshot_files(cfg, domain)]
    return files + [root / "videos" / f"{v}.npz" for v in sorted(ids)]


def _digest(root: Path, paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def split_digest(root: str | Path, split: str, cfg: RenderConfig | None = None) -> str:
    """sha256 over a split's files (retrieval JSON, label file, latent script, few-shot lists of
    a target ``*_train`` split, and its videos)."""
    root = Path(root)
    if cfg is None:
        cfg = RenderConfig.from_json(load_recipe(root)["config"])
    return _digest(root, _split_files(root, split, cfg))


_GLOBAL_FILES = ("recognition/classes.txt", "recognition/descriptions.json",
                 "recognition/zeroshot.json")


def _global_files(cfg: RenderConfig) -> list[str]:
    return [*_GLOBAL_FILES, *(f"recognition/base_novel/seed{s}.json"
                              for s in range(cfg.base_novel_seeds))]


def _base_novel(seed: int, s: int, cfg: RenderConfig) -> dict[str, list[str]]:
    """Split the classes into ``n_base`` base and the rest novel; an order-only pair stays on
    one side."""
    units: list[tuple[str, ...]] = []
    for a in ACTIONS:
        if a.order_only and a.reversed:
            continue
        units.append((a.name, a.reverse) if a.order_only else (a.name,))
    rng = _rng(seed, 9000, s)
    for _ in range(1000):
        base: list[str] = []
        for k in rng.permutation(len(units)):
            if len(base) + len(units[k]) <= cfg.n_base:
                base += units[k]
        if len(base) == cfg.n_base:
            break
    else:  # pragma: no cover - n_base is always reachable with 6 singletons
        raise ValueError(f"cannot split the classes into {cfg.n_base} base classes")
    return {"base": [c for c in CLASSES if c in base],
            "novel": [c for c in CLASSES if c not in base]}


def _write_global(root: Path, seed: int, cfg: RenderConfig) -> None:
    _write_lines(root / "recognition" / "classes.txt", list(CLASSES))
    (root / "recognition" / "descriptions.json").write_text(
        json.dumps(descriptions(8), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    zs = {"seen": list(cfg.seen_classes),
          "unseen": [c for c in CLASSES if c in cfg.zeroshot_classes]}
    (root / "recognition" / "zeroshot.json").write_text(json.dumps(zs, indent=1) + "\n",
                                                        encoding="utf-8")
    for s in range(cfg.base_novel_seeds):
        path = root / "recognition" / "base_novel" / f"seed{s}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_base_novel(seed, s, cfg), indent=1) + "\n", encoding="utf-8")


def _write_split(root: Path, split: str, seed: int, cfg: RenderConfig) -> dict[str, int]:
    domain, part = split.rsplit("_", 1)
    classes = cfg.seen_classes if domain == SOURCE else CLASSES
    per_class = {("source", "train"): cfg.n_source_train, ("source", "test"): cfg.n_source_test
                 }.get((domain, part), cfg.n_train if part == "train" else cfg.n_test)
    n_caps = cfg.captions_train if part == "train" else cfg.captions_test
    code = _split_key(split)
    rng = _rng(seed, 7000, *code)
    order = rng.permutation(np.repeat(np.arange(len(classes)), per_class))
    videos, sentences, labels, latent = [], [], [], []
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for i, ci in enumerate(order):
        vid = f"{split}_{i:05d}"
        script = {"video_id": vid, "split": split,
                  **sample_script(rng, classes[int(ci)], domain, cfg)}
        save_npz(root / "videos" / f"{vid}.npz", frames=render(script))
        caps = captions_for(rng, script, n_caps)
        videos.append({"video_id": vid, "split": split, "domain": domain})
        for c in caps:
            sentences.append({"video_id": vid, "caption": c,
                              "sen_id": 10_000_000 * (1 + code[0]) + 1_000_000 * code[1]
                              + len(sentences)})
        labels.append(f"{vid} {script['label']}")
        latent.append(script)
    write_retrieval_json(root / "retrieval" / f"{split}.json", videos, sentences)
    _write_lines(root / "recognition" / f"{split}.txt", labels)
    write_annotations(root / "latent" / f"{split}.jsonl", latent)
    if domain != SOURCE and part == "train":
        by_class: dict[int, list[str]] = {}
        for line in labels:
            vid, lab = line.split()
            by_class.setdefault(int(lab), []).append(vid)
        for s in range(cfg.fewshot_seeds):
            frng = _rng(seed, 9100, code[0], s)
            perm = {c: [vids[j] for j in frng.permutation(len(vids))]
                    for c, vids in sorted(by_class.items())}
            for k in cfg.shots:
                keep = {v for vids in perm.values() for v in vids[:k]}
                _write_lines(root / "recognition" / "fewshot" / f"{domain}_K{k}_seed{s}.txt",
                             [line for line in labels if line.split()[0] in keep])
    return {"videos": len(videos), "sentences": len(sentences)}


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read ``recipe.json`` (a file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _identity(seed: int, cfg: RenderConfig) -> str:
    blob = json.dumps({"generator": _GENERATOR, "format_version": FORMAT_VERSION, "seed": seed,
                       "config": cfg.to_json()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def generate(out_dir: str | Path, seed: int = 0, config: RenderConfig | None = None,
             splits: str | tuple[str, ...] | list[str] | None = None,
             quiet: bool = False) -> Path:
    """Generate the rendered benchmark (or some of its splits) into ``out_dir``.

    Writes the class-level files (``recognition/classes.txt``, ``descriptions.json``,
    ``zeroshot.json``, ``base_novel/seed{s}.json``), then per split ``videos/{video_id}.npz``
    (key ``frames``, ``uint8 [T, S, S, 3]``), ``retrieval/{split}.json`` (MSR-VTT style),
    ``recognition/{split}.txt`` (``video_id label``), ``latent/{split}.jsonl`` (the hidden
    scripts) and, for a target ``{d}_train`` split, ``recognition/fewshot/{d}_K{K}_seed{s}.txt``;
    last ``recipe.json`` (seed, config, per-split counts and sha256, numpy version). Calling it
    again on a folder made with the same seed and config adds splits; another recipe is refused.

    Args:
        out_dir: output folder (created).
        seed: master seed.
        config: the knobs (default :class:`RenderConfig()`).
        splits: None/"all", "source", "target", or names like ``"flat_test,dark_test"``.
        quiet: no progress lines on stdout.

    Returns:
        ``Path(out_dir)``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = config or RenderConfig()
    names = split_names(cfg, splits)
    root = Path(out_dir)
    recipe: dict[str, Any] = {"generator": _GENERATOR, "format_version": FORMAT_VERSION,
                              "seed": seed, "config": cfg.to_json(), "splits": {}}
    if (root / "recipe.json").is_file():
        old = load_recipe(root)
        if (old.get("generator"), old.get("seed"), old.get("config")) != (
                _GENERATOR, seed, recipe["config"]):
            raise ValueError(f"{root} holds data from another recipe; generate into an empty "
                             "folder")
        recipe["splits"] = old.get("splits", {})
    root.mkdir(parents=True, exist_ok=True)
    _write_global(root, seed, cfg)
    recipe["global_sha256"] = _digest(root, [root / f for f in _global_files(cfg)])
    for split in names:
        t0 = time.perf_counter()
        counts = _write_split(root, split, seed, cfg)
        recipe["splits"][split] = {**counts, "sha256": split_digest(root, split, cfg)}
        if not quiet:
            print(f"[rendered] {split}: {counts['videos']} videos, {counts['sentences']} "
                  f"captions ({time.perf_counter() - t0:.1f} s)", flush=True)
    order = split_names(cfg, None)
    recipe["splits"] = {s: recipe["splits"][s] for s in order if s in recipe["splits"]}
    recipe["environment"] = {"numpy": np.__version__}
    recipe["command"] = ("python -m readpvla.data.rendered --recipe THIS_DIR/recipe.json --out "
                         "NEW_DIR   # regenerates these splits byte-identically")
    (root / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------
# cache
# ------------------------------------------------------------------------------------------------
def shipped_dir() -> Path:
    """The shipped subset and recipe: ``<repo>/data_samples/rendered``."""
    return Path(__file__).resolve().parents[2] / "data_samples" / "rendered"


def default_cache_dir() -> Path:
    """``$READPVLA_CACHE/rendered``, else ``~/.cache/readpvla/rendered``."""
    base = os.environ.get("READPVLA_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "readpvla") / "rendered"


_MARKER = ".complete"


_OWN_ENTRIES = {"videos", "retrieval", "recognition", "latent", "recipe.json", _MARKER}


def _is_ours(root: Path) -> bool:
    """True if ``root`` may be replaced: absent, empty, or holding only what :func:`generate`
    writes (and then a recipe of this generator). Never the shipped folder."""
    if not root.exists():
        return True
    if not root.is_dir() or root.resolve() == shipped_dir().resolve():
        return False
    names = {p.name for p in root.iterdir()}
    if not names:
        return True
    if not names <= _OWN_ENTRIES:
        return False
    try:
        return load_recipe(root).get("generator") == _GENERATOR
    except (OSError, ValueError):
        return False


def ensure(root: str | Path | None = None, recipe: str | Path | None = None,
           quiet: bool = False) -> Path:
    """The whole benchmark (every split), generated on first use; returns its folder.

    ``root`` defaults to :func:`default_cache_dir`; the seed and config come from ``recipe``
    (a ``recipe.json`` or its folder; default the shipped ``data_samples/rendered/recipe.json``,
    or seed 0 and :class:`RenderConfig()` where that is absent). A marker file ``.complete``
    holding the sha256 of (generator, format version, seed, config) says the folder is done: a
    second call only reads it. Generation goes to a temporary sibling folder that is renamed into
    place, so concurrent callers and interrupted runs never leave a half-written ``root``. A
    ``root`` made by another recipe of this generator is replaced; a non-empty folder that is not
    this generator's is refused.
    """
    root = Path(root) if root is not None else default_cache_dir()
    if recipe is None and (shipped_dir() / "recipe.json").is_file():
        recipe = shipped_dir()
    if recipe is not None:
        r = load_recipe(recipe)
        seed, cfg = int(r["seed"]), RenderConfig.from_json(r["config"])
    else:
        seed, cfg = 0, RenderConfig()
    ident = _identity(seed, cfg)
    marker = root / _MARKER

    def done() -> bool:
        return marker.is_file() and marker.read_text(encoding="utf-8").strip() == ident

    if done():
        return root
    if not _is_ours(root):
        raise ValueError(f"{root} exists and does not hold this generator's data; pass another "
                         "root or remove it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    t0 = time.perf_counter()
    if not quiet:
        print(f"[rendered] generating the rendered benchmark into {root} (seconds)",
              file=sys.stderr, flush=True)
    old = None
    try:
        generate(tmp, seed=seed, config=cfg, splits="all", quiet=True)
        (tmp / _MARKER).write_text(ident + "\n", encoding="utf-8")
        if done():                                   # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return root
        if root.exists():
            old = root.with_name(f".{root.name}.old-{os.getpid()}-{time.time_ns()}")
            root.rename(old)
        try:
            tmp.rename(root)
        except OSError:
            if done():
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    if not quiet:
        print(f"[rendered] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr,
              flush=True)
    return root


def export_examples(root: str | Path, out_dir: str | Path, video_ids: list[str],
                    fps: float = 8) -> Path:
    """Write some videos of ``root`` as ``.mp4`` (H.264 via PyAV) into ``out_dir/videos``, with
    ``out_dir/retrieval.json`` (MSR-VTT style) and ``out_dir/labels.txt`` for them: the layout a
    user with real video files has."""
    from readpvla.data.video import read_frames, write_mp4
    from readpvla.data.videotext import load_recognition, load_retrieval

    root, out = Path(root), Path(out_dir)
    wanted = set(video_ids)
    videos, sentences, labels = [], [], []
    splits = sorted({v.rsplit("_", 1)[0] for v in video_ids})
    for split in splits:
        ret = load_retrieval(root, split)
        rec = load_recognition(root, split)
        lab = dict(zip(rec.video_ids, rec.labels.tolist()))
        for i, vid in enumerate(ret.video_ids):
            if vid not in wanted:
                continue
            write_mp4(out / "videos" / f"{vid}.mp4", read_frames(ret.video_paths[i]), fps=fps)
            videos.append({"video_id": vid, "split": "examples", "domain": ret.domains[i]})
            sentences += [{"video_id": vid, "caption": ret.captions[j],
                           "sen_id": ret.sen_ids[j]} for j in ret.captions_of(i)]
            labels.append(f"{vid} {lab[vid]}")
    write_retrieval_json(out / "retrieval.json", videos, sentences)
    _write_lines(out / "labels.txt", labels)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m readpvla.data.rendered --out DIR [--recipe R] [--splits S]``."""
    ap = argparse.ArgumentParser(prog="python -m readpvla.data.rendered",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--recipe", help="take seed and config from this recipe.json (or folder); "
                                     "without --splits, regenerate the splits it lists")
    ap.add_argument("--seed", type=int, default=0, help="master seed (without --recipe)")
    ap.add_argument("--splits", default=None,
                    help='"all" (default without --recipe), "source", "target" or '
                         'comma-separated split names')
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.recipe:
        r = load_recipe(a.recipe)
        splits = a.splits or list(r.get("splits") or []) or "all"
        generate(a.out, seed=int(r["seed"]), config=RenderConfig.from_json(r["config"]),
                 splits=splits)
    else:
        generate(a.out, seed=a.seed, splits=a.splits or "all")
    print(f"[rendered] wrote {a.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
