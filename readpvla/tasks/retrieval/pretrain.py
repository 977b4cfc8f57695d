"""The video CLIP backbones and their contrastive pretraining on the rendered *source* split.

The offline default backbone (:meth:`readpvla.backbones.VideoCLIP.offline`) is a small CLIP image
tower (32 px frames in 8 x 8 patches, width 128, 4 blocks) trained here from scratch, and the
real, frozen all-MiniLM-L6-v2 text tower (from its PyPI package) with a trained projection, so
the language side stays real. Both temporal variants are pretrained the same way:

- ``frames``: CLIP4Clip's meanP (each frame through the image tower, embeddings averaged): the
  backbone cannot see frame order;
- ``spatiotemporal``: joint attention over all T x (N+1) tokens with a temporal position
  embedding (ViCLIP-style).

Pretraining minimises the symmetric InfoNCE (:mod:`.loss`) on ``source_train`` (2400 videos of the
20 seen classes; per video and epoch one caption drawn from its 5 captions and its class caption
"a video of <class>", so the space also knows the recognition prompts' phrasing), with a mild
generic photometric jitter (:func:`photometric_jitter`, not the target domains' shifts), AdamW with
linear warm-up and cosine decay, and keeps the epoch with the best text-to-video R@1 on
``source_test``. The text tower is frozen, so its sentence features are computed once (eval
mode) and only the projection trains on them. Our choices, where CLIP4Clip (which starts from
OpenAI's CLIP) has nothing to say: the class captions, the jitter, the sizes below. ``readpvla pretrain-videoclip`` regenerates the shipped checkpoints
(``data_samples/rendered/checkpoints/video_clip_{frames,spatiotemporal}``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from readpvla.backbones.checkpoint import load_backbone, save_backbone
from readpvla.data import rendered
from readpvla.data.video import clip_normalize
from readpvla.train import FitResult, fit

from .data import data_root, dataset
from .evaluate import TABLE_METRIC, evaluate

__all__ = ["PRETRAIN", "TEMPORAL", "PretrainSettings", "default_checkpoint", "load",
           "pretrain"]

TEMPORAL = ("frames", "spatiotemporal")
#: the class caption added to each source video's captions (the recognition prompt's form)
CLASS_CAPTION = "a video of {}"


@dataclass(frozen=True)
class PretrainSettings:
    """The pretraining recipe (the shipped checkpoints used these defaults)."""

    epochs: int = 20            # passes over source_train (37 steps of 64 videos each)
    batch_size: int = 64
    lr: float = 1e-3            # AdamW peak learning rate
    weight_decay: float = 0.05
    warmup_steps: int = 100     # linear warm-up, then cosine decay to 0
    patience: int | None = None  # epochs without a better source_test R@1 (None: all epochs)
    num_frames: int = 8
    projection_dim: int = 128
    augment: bool = True        # photometric_jitter on every training video


PRETRAIN = PretrainSettings()


def default_checkpoint(temporal: str = "frames") -> Path:
    """The shipped pretrained backbone: ``data_samples/rendered/checkpoints/video_clip_<temporal>``."""
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    return rendered.shipped_dir() / "checkpoints" / f"video_clip_{temporal}"


def load(temporal: str = "frames", checkpoint: str | Path | None = None) -> nn.Module:
    """A pretrained :class:`~readpvla.backbones.VideoCLIP` (default: the shipped one of this
    variant), in eval mode."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint(temporal)
    return load_backbone(path, expected_class="VideoCLIP").eval()


@torch.no_grad()
def _sentence_features(model: nn.Module, captions: list[str], batch_size: int = 256) -> Tensor:
    """The frozen text tower's pooled features ``[N, d_text]`` (before the trained projection),
    in eval mode: what :meth:`VideoCLIP.text_tower` projects."""
    tm = model.text_model
    was = tm.training
    tm.eval()
    feats = []
    try:
        for i in range(0, len(captions), batch_size):
            tok = model.tokenize(captions[i: i + batch_size])
            h = tm(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
            m = tok["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, L, 1)
            feats.append((h * m).sum(1) / m.sum(1).clamp_min(1.0))  # mean over real tokens
    finally:
        tm.train(was)
    return torch.cat(feats)


def photometric_jitter(frames: np.ndarray, rng: np.random.Generator, gain: float = 0.3,
                       shift: float = 25.0, noise: float = 6.0) -> np.ndarray:
    """Generic photometric augmentation of one video (the same for all its frames): pixel values
    ``x * g + b`` with ``g ~ U(1 - gain, 1 + gain)``, ``b ~ U(-shift, shift)``, then, half the
    time, Gaussian noise of std ``~ U(0, noise)``; ``uint8 [T, H, W, 3]`` in and out. Mild on
    purpose: it is not the target domains' shifts (pastel, heavy noise, dark and tinted)."""
    x = frames.astype(np.float32) * rng.uniform(1 - gain, 1 + gain) + rng.uniform(-shift, shift)
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(0.0, noise), size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class _CachedTextBatches:
    """Pretraining batches: (jittered) frames + the cached sentence feature of one caption per
    video, drawn from its captions and its class caption (``extra[i]``)."""

    def __init__(self, data: Any, feats: Tensor, extra: list[int], batch_size: int,
                 seed: int, augment: bool) -> None:
        self.data, self.feats, self.extra, self.batch_size = data, feats, extra, batch_size
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def __iter__(self):
        order = self.rng.permutation(len(self.data))
        for pos in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[pos: pos + self.batch_size].tolist()
            caps = [int(self.rng.choice([*self.data.captions_of(i), self.extra[i]]))
                    for i in idx]
            frames = [self.data.frames(i) for i in idx]
            if self.augment:
                frames = [photometric_jitter(f, self.rng) for f in frames]
            video = torch.from_numpy(np.stack([clip_normalize(f) for f in frames]))
            yield {"frames": video, "text": self.feats[caps]}


def _source_labels(root: Path, video_ids: list[str]) -> list[int]:
    """The class label of each ``source_train`` video (its recognition label file)."""
    from readpvla.data.videotext import load_recognition

    rec = load_recognition(root, "source_train")
    by_id = dict(zip(rec.video_ids, rec.labels.tolist()))
    missing = [v for v in video_ids if v not in by_id]
    if missing:
        raise ValueError(f"source_train videos without a class label: {missing[:3]}")
    return [int(by_id[v]) for v in video_ids]


def _cached_loss(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    from readpvla.backbones.video_clip import contrastive_loss

    video = model.encode_video(batch["frames"])                      # (B, D)
    text = F.normalize(model.text_projection(batch["text"]), dim=-1)  # (B, D)
    scale = model.logit_scale.exp().clamp(max=100.0)
    loss = contrastive_loss(scale * text @ video.t())
    return loss, {"nce": float(loss.detach()), "scale": float(scale.detach())}


def pretrain(temporal: str = "frames", out: str | Path | None = None,
             settings: PretrainSettings = PRETRAIN, *, root: str | Path | None = None,
             seed: int = 0, device: str | torch.device = "cpu", progress: bool = True
             ) -> tuple[nn.Module, FitResult]:
    """Pretrain an offline video CLIP (module docstring) and save it to ``out`` (None: don't).

    Returns:
        ``(model, fit_result)``; the model holds the best ``source_test`` epoch's weights.
    """
    from readpvla.backbones.video_clip import VideoCLIP

    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    t0 = time.perf_counter()
    root = data_root("source_train", root)
    train, test = dataset("source_train", root), dataset("source_test", root)
    model = VideoCLIP.offline(projection_dim=settings.projection_dim, temporal=temporal,
                              num_frames=settings.num_frames, seed=seed).to(device)
    # each video's captions, plus its class caption "a video of <class>" (the recognition
    # label of the same video), so the space also holds the class names' phrasing
    labels = _source_labels(root, train.video_ids)
    class_caps = [CLASS_CAPTION.format(c) for c in rendered.CLASSES]
    feats = _sentence_features(model, list(train.captions) + class_caps).to(device)
    extra = [len(train.captions) + lab for lab in labels]
    batches = _CachedTextBatches(train, feats, extra, settings.batch_size, seed,
                                 settings.augment)
    result = fit(model, _cached_loss, batches, epochs=settings.epochs, lr=settings.lr,
                 weight_decay=settings.weight_decay, seed=seed, device=device,
                 warmup_steps=settings.warmup_steps, schedule="cosine",
                 eval_fn=lambda m: evaluate(m, test)[TABLE_METRIC], patience=settings.patience,
                 progress=progress, desc=f"pretrain {temporal}")
    scores = evaluate(model, test)
    if out is not None:
        save_backbone(model.cpu(), out, meta={
            "trained_on": "rendered source_train (2400 videos, 20 seen classes)",
            "validated_on": "rendered source_test", "temporal": temporal, "seed": seed,
            "recipe": {**settings.__dict__, "loss": "symmetric InfoNCE", "optimizer": "AdamW",
                       "schedule": "linear warm-up + cosine", "text_tower": "frozen MiniLM"},
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "seconds": round(time.perf_counter() - t0, 1), "source_test": scores,
            "command": f"readpvla pretrain-videoclip --temporal {temporal} --out "
                       f"{Path(out).as_posix()}",
        })
        model.to(device)
    return model, result
