"""A tiny learnable TLG benchmark in the QVHighlights layout (two domains) with tiny pretrained
checkpoints, for tests that run whole grids (test_tlg_task.py, test_ray.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from readpvla.backbones.checkpoint import save_backbone
from readpvla.data import save_npz, write_annotations
from readpvla.tasks import tlg

DV, DT = 8, 6
TINY = {"d_video": DV, "d_text": DT, "d_model": 16, "n_heads": 2, "d_ffn": 32}
TINY_SETTINGS = tlg.TransferSettings(epochs=2, batch_size=4, patience=2, max_iter=20)


def make_split(root: Path, split: str, n: int, seed: int, domain: str = "dog") -> None:
    """A learnable toy: the relevant clips carry the query's mean feature."""
    rng = np.random.default_rng(seed)
    (root / "video_features").mkdir(parents=True, exist_ok=True)
    (root / "text_features").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        n_clips = int(rng.integers(6, 12))
        st = int(rng.integers(0, n_clips - 3))
        ln = int(rng.integers(2, 4))
        text = rng.normal(size=(int(rng.integers(3, 6)), DT)).astype(np.float32)
        video = rng.normal(size=(n_clips, DV)).astype(np.float32) * 0.3
        video[st:st + ln, :DT] += text.mean(0)
        vid, qid = f"{split}_{i}", 1000 * seed + i
        save_npz(root / "video_features" / f"{vid}.npz", features=video)
        save_npz(root / "text_features" / f"qid{qid}.npz", last_hidden_state=text)
        recs.append({"qid": qid, "query": f"query {i}", "duration": 2.0 * n_clips, "vid": vid,
                     "domain": domain, "relevant_windows": [[2.0 * st, 2.0 * (st + ln)]],
                     "relevant_clip_ids": list(range(st, st + ln)),
                     "saliency_scores": [[3, 4, 2]] * ln})
    write_annotations(root / "annotations" / f"{split}.jsonl", recs)


def make_toy(root: Path) -> Path:
    """Splits ``{dog,gym}_{train,val,test}`` (8 / 4 / 6 queries) and tiny checkpoints
    ``root/ckpt/{crossmodal,momentdetr}``."""
    for split, n, seed in (("dog_train", 8, 1), ("dog_val", 4, 2), ("dog_test", 6, 3),
                           ("gym_train", 8, 4), ("gym_val", 4, 5), ("gym_test", 6, 6)):
        make_split(root, split, n, seed, split.split("_")[0])
    torch.manual_seed(0)
    for kind in ("crossmodal", "momentdetr"):
        extra = {"n_queries": 4} if kind == "momentdetr" else {}
        save_backbone(tlg.build_backbone(kind, **TINY, **extra), root / "ckpt" / kind)
    return root
