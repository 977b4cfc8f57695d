r"""Class descriptions for MSTA's consistency constraint L_CC: spatial ("A video about ...") and
temporal ("... involves the following step: ...") descriptions of every class, N of each.

**Real datasets: the ETL4Video files.** The authors' repository (github.com/chenhaoxing/ETL4Video,
folder ``description/``) holds one JSON file per (N, type, dataset)::

    {N}_s_description_{dataset}.json     spatial,  N = 2, 4, 8
    {N}_t_description_{dataset}.json     temporal
    dataset: hmdb, k400, k600, ssv2, ucf_101, and {dataset}_base / {dataset}_novel (N = 2)

each a JSON object from the class index (a decimal string, ``"0"`` .. ``"C-1"``, the order of the
dataset's class list) to a list of N sentences::

    {"0": ["A video about smooth, flowing strokes.", "A video about gentle, rhythmic movements."],
     "1": [...], ...}

The LLM's text is kept as is (the files hold typos such as "A videos of" and temporal entries
that do not follow the template; they are what the paper trained with). :func:`load_etl4video`
checks every file and names the file, the key and its line for anything malformed;
:func:`write_etl4video` writes the same format.

**The rendered benchmark: a seeded LLM stand-in.** :func:`generate` writes the descriptions from
each rendered class's hidden script (:class:`readpvla.data.rendered.Action`: 4 phrases of what a
frame shows, 4 step sequences), phrased as :func:`readpvla.data.rendered.descriptions`. It
models the paper's finding that N = 2 is best because more descriptions carry more LLM
hallucination: the first ``reliable`` descriptions of a class (default 2) are always right, and
each later one is, with probability ``hallucination``, about the wrong object (spatial: what a
frame of another class shows) or in the wrong order (temporal: the class's steps reversed, i.e.
the motion played backwards). So the hallucinated share is 0 for N <= 2 and ``h (N - 2) / N``
in expectation above. Lists are nested (the N = 2 descriptions are the first two of N = 8) and a
class's descriptions depend only on (seed, class name).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from readpvla.data import rendered

__all__ = ["KINDS", "MAX_N", "ClassDescriptions", "etl4video_path", "generate",
           "load_etl4video", "write_etl4video"]

#: the two description types and their file-name letters
KINDS = {"spatial": "s", "temporal": "t"}
#: descriptions per type the generator can write (4 phrases x 2 phrasings)
MAX_N = 8


@dataclass(frozen=True)
class ClassDescriptions:
    """N spatial and N temporal descriptions per class; ``hallucinated`` (generator only) marks
    the wrong ones, same layout as the texts."""

    classes: tuple[str, ...]
    spatial: tuple[tuple[str, ...], ...]   # [C][N]
    temporal: tuple[tuple[str, ...], ...]  # [C][N]
    hallucinated: dict[str, tuple[tuple[bool, ...], ...]] | None = None

    @property
    def n(self) -> int:
        """N, the descriptions per type and class."""
        return len(self.spatial[0]) if self.spatial else 0

    def of(self, cls: str) -> dict[str, list[str]]:
        """``{"spatial": [...], "temporal": [...]}`` of class ``cls``."""
        if cls not in self.classes:
            raise ValueError(f"no descriptions for class {cls!r}; known: {list(self.classes)}")
        i = self.classes.index(cls)
        return {"spatial": list(self.spatial[i]), "temporal": list(self.temporal[i])}

    def hallucinated_share(self) -> float:
        """The share of hallucinated descriptions (0 when unknown, as for files)."""
        if not self.hallucinated:
            return 0.0
        flags = [f for kind in self.hallucinated.values() for row in kind for f in row]
        return float(np.mean(flags)) if flags else 0.0


# -- ETL4Video files -------------------------------------------------------------------------------
def etl4video_path(folder: str | Path, dataset: str, n: int, kind: str) -> Path:
    """``folder/{n}_{s|t}_description_{dataset}.json``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    return Path(folder) / f"{n}_{KINDS[kind]}_description_{dataset}.json"


def _line_of(text: str, key: str) -> int:
    """The line (1-based) where ``"key":`` first appears in ``text`` (1 if not found)."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _read_file(path: Path, n: int, n_classes: int) -> list[tuple[str, ...]]:
    """One ETL4Video file as ``[C][N]`` sentences, checked (module docstring)."""
    if not path.is_file():
        raise FileNotFoundError(f"no description file {path} (ETL4Video names: "
                                "{N}_{s|t}_description_{dataset}.json)")
    text = path.read_text(encoding="utf-8")

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for k, v in items:
            if k in seen:
                raise ValueError(f"{path}: key {k!r} appears twice (line {_line_of(text, k)})")
            seen[k] = v
        return seen

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: "
                         f"{e.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object from class index to a list of "
                         f"descriptions, got {type(data).__name__}")
    out: list[tuple[str, ...] | None] = [None] * n_classes
    for key, value in data.items():
        where = f"{path}, key {key!r} (line {_line_of(text, key)})"
        if not re.fullmatch(r"0|[1-9][0-9]*", key):
            raise ValueError(f"{where}: keys must be class indices '0' .. '{n_classes - 1}'")
        if int(key) >= n_classes:
            raise ValueError(f"{where}: class index out of range, the class list has "
                             f"{n_classes} classes")
        if not isinstance(value, list) or len(value) != n:
            got = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
            raise ValueError(f"{where}: expected a list of {n} descriptions, got {got}")
        for i, s in enumerate(value):
            if not isinstance(s, str) or not s.strip():
                raise ValueError(f"{where}: description {i} must be a non-empty string, got "
                                 f"{s!r}")
        out[int(key)] = tuple(value)
    missing = [i for i, row in enumerate(out) if row is None]
    if missing:
        raise ValueError(f"{path}: no descriptions for class index(es) {missing[:5]} (expected "
                         f"keys '0' .. '{n_classes - 1}')")
    return out  # type: ignore[return-value]


def load_etl4video(folder: str | Path, dataset: str, n: int, classes: Sequence[str]
                   ) -> ClassDescriptions:
    """The spatial and temporal ETL4Video files of ``dataset`` with ``n`` descriptions, for
    ``classes`` (the dataset's class list, in label order: key ``"i"`` is ``classes[i]``).

    Raises:
        FileNotFoundError: a file is missing (named).
        ValueError: malformed JSON (file, line, column), a key that is not a class index or is
            out of range, a missing class, a value that is not a list of ``n`` non-empty strings
            (file, key and its line).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    classes = tuple(classes)
    if not classes:
        raise ValueError("classes is empty")
    texts = {kind: _read_file(etl4video_path(folder, dataset, n, kind), n, len(classes))
             for kind in KINDS}
    return ClassDescriptions(classes, tuple(texts["spatial"]), tuple(texts["temporal"]))


def write_etl4video(folder: str | Path, dataset: str, descriptions: ClassDescriptions
                    ) -> tuple[Path, Path]:
    """Write ``descriptions`` as the two ETL4Video files of ``dataset`` (keys in class order);
    returns the spatial and the temporal path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        rows = getattr(descriptions, kind)
        path = etl4video_path(folder, dataset, descriptions.n, kind)
        path.write_text(json.dumps({str(i): list(r) for i, r in enumerate(rows)}, indent=4,
                                   ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


# -- the rendered benchmark's LLM stand-in ---------------------------------------------------------
def _spatial(visible: str, style: int) -> str:
    return f"A video about {visible}." if style == 0 else \
        f"A video about a simple scene showing {visible}."


def _temporal(name: str, steps: Sequence[str], style: int) -> str:
    a, b, c = steps
    seq = f"first {a}, then {b}, and finally {c}" if style == 0 else \
        f"{a}; after that {b}; at the end {c}"
    return f"{name[0].upper()}{name[1:]} involves the following step: {seq}."


def generate(classes: Sequence[str], n: int = 2, hallucination: float = 0.0,
             reliable: int = 2, seed: int = 0) -> ClassDescriptions:
    """N spatial and N temporal descriptions of each rendered class, from its hidden script,
    with hallucinations after the first ``reliable`` ones (module docstring).

    Args:
        classes: rendered class names (:data:`readpvla.data.rendered.ACTIONS`).
        n: descriptions per type, 1 .. 8.
        hallucination: the chance that a description after the first ``reliable`` is wrong, in
            [0, 1].
        reliable: descriptions per type that are always right.
        seed: the LLM's seed.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ValueError(f"n must be an integer in [1, {MAX_N}], got {n!r}")
    if isinstance(hallucination, bool) or not isinstance(hallucination, int | float) \
            or not 0.0 <= hallucination <= 1.0:
        raise ValueError(f"hallucination must be a number in [0, 1], got {hallucination!r}")
    if isinstance(reliable, bool) or not isinstance(reliable, int) or reliable < 0:
        raise ValueError(f"reliable must be an integer >= 0, got {reliable!r}")
    unknown = [c for c in classes if c not in {a.name for a in rendered.ACTIONS}]
    if unknown:
        raise ValueError(f"unknown rendered class(es) {unknown[:3]}: the generator writes from "
                         "the rendered classes' scripts; load real datasets' ETL4Video files")
    actions = [rendered.action(c) for c in classes]
    spatial, temporal, wrong_s, wrong_t = [], [], [], []
    for act in actions:
        rng = np.random.default_rng([int(seed), zlib.crc32(act.name.encode())])
        others = [v for a in rendered.ACTIONS if a.visible != act.visible for v in a.visible]
        order = rng.permutation(MAX_N)  # which (phrase, phrasing) each slot says, all 8 slots
        wrong = rng.random((2, MAX_N)) < hallucination  # drawn for all slots: lists nest
        wrong[:, :reliable] = False
        picks = rng.integers(len(others), size=MAX_N)
        s_row, t_row = [], []
        for slot in range(n):
            k, style = int(order[slot]) % 4, int(order[slot]) // 4
            visible = others[picks[slot]] if wrong[0, slot] else act.visible[k]
            steps = act.steps[k][::-1] if wrong[1, slot] else act.steps[k]
            s_row.append(_spatial(visible, style))
            t_row.append(_temporal(act.name, steps, style))
        spatial.append(tuple(s_row))
        temporal.append(tuple(t_row))
        wrong_s.append(tuple(bool(w) for w in wrong[0, :n]))
        wrong_t.append(tuple(bool(w) for w in wrong[1, :n]))
    return ClassDescriptions(tuple(a.name for a in actions), tuple(spatial), tuple(temporal),
                             {"spatial": tuple(wrong_s), "temporal": tuple(wrong_t)})
