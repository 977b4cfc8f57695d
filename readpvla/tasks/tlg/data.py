"""TLG data: the target domains, where the splits live, the source splits, batches.

The data is the QVHighlights / Moment-DETR format (:func:`readpvla.data.load_tlg`); the shipped
synthetic benchmark (``data_samples/tlg``) has six target domains named like YouTube Highlights'
(40 training, 20 validation, 60 test queries each) and a source split that is regenerated on
demand (:func:`ensure_source_splits`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from readpvla.data import TLGBatch, TLGDataset, collate_tlg, load_tlg

__all__ = ["DOMAINS", "batches", "dataset", "default_data_dir", "default_source_dir",
           "ensure_source_splits"]

#: the YouTube Highlights domains of the synthetic benchmark, with the paper's column names
DOMAINS = {"dog": "Dog", "gym": "Gym", "parkour": "Par.", "skating": "Ska.", "skiing": "Ski.",
           "surfing": "Sur."}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_data_dir() -> Path:
    """The shipped target-domain splits: ``<repo>/data_samples/tlg``."""
    return _repo_root() / "data_samples" / "tlg"


def default_source_dir() -> Path:
    """Where the (not shipped) source splits are regenerated: ``$READPVLA_CACHE/tlg`` or
    ``~/.cache/readpvla/tlg``."""
    base = os.environ.get("READPVLA_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "readpvla") / "tlg"


_DATASETS: dict[tuple[str, str], TLGDataset] = {}


def dataset(root: str | Path, split: str) -> TLGDataset:
    """``load_tlg(root, split)``, loaded once per process (runs of a grid share it)."""
    key = (str(root), split)
    if key not in _DATASETS:
        _DATASETS[key] = load_tlg(root, split)
    return _DATASETS[key]


def batches(data: TLGDataset, batch_size: int) -> Iterable[TLGBatch]:
    """``data`` in file order, ``batch_size`` queries a batch (the last one may be smaller)."""
    for i in range(0, len(data), batch_size):
        yield collate_tlg([data[j] for j in range(i, min(i + batch_size, len(data)))],
                          clip_len=data.clip_len)


def ensure_source_splits(source_dir: str | Path | None = None,
                         recipe_dir: str | Path | None = None) -> Path:
    """Make sure ``source_train`` / ``source_val`` exist in ``source_dir``; else regenerate them
    with the seed and knobs of ``recipe_dir/recipe.json`` (default: the shipped target data), so
    source and target come from the same synthetic world. Returns ``source_dir``."""
    source_dir = Path(source_dir) if source_dir is not None else default_source_dir()
    ann = source_dir / "annotations"
    if (ann / "source_train.jsonl").is_file() and (ann / "source_val.jsonl").is_file():
        return source_dir
    from readpvla.data.synthetic_tlg import generate_synthetic_tlg, load_recipe

    recipe_dir = Path(recipe_dir) if recipe_dir is not None else default_data_dir()
    if (recipe_dir / "recipe.json").is_file():
        r = load_recipe(recipe_dir)
        conf = {**r["config"], "domains": tuple(r["config"]["domains"])}
        seed = r["seed"]
    else:
        conf, seed = {}, 0
    print(f"[tlg] generating source_train / source_val into {source_dir} (a few minutes)",
          file=sys.stderr)
    generate_synthetic_tlg(source_dir, seed=seed, splits=("source_train", "source_val"), **conf)
    return source_dir
