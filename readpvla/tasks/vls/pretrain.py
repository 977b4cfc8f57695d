"""VLS backbones and their pretraining: a small VG-BART / VG-T5 (:mod:`readpvla.backbones.vg`,
over ``transformers``' BART / T5) trained on the synthetic How2 *source* split (generated on the
fly). ``data_samples/how2/checkpoints/vg_{bart,t5}`` hold the shipped ones
(``readpvla pretrain-vls`` regenerates them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from readpvla.backbones.vg import VGT5, VGBart, VisionGuidedSeq2Seq
from readpvla.data.how2 import How2Collator, How2Config, generate_split, load_tokenizer

from .data import default_data_dir
from .evaluate import evaluate

__all__ = ["BACKBONES", "PRETRAIN_STEPS", "PretrainConfig", "backbone_class", "checkpoint_path",
           "load_backbone", "pretrain"]

DATA_ROOT = default_data_dir()
BACKBONES: dict[str, type[VisionGuidedSeq2Seq]] = {"bart": VGBart, "t5": VGT5}


def backbone_class(backbone: str) -> type[VisionGuidedSeq2Seq]:
    """``VGBart`` for ``"bart"``, ``VGT5`` for ``"t5"`` (``ValueError`` otherwise)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    return BACKBONES[backbone]


def checkpoint_path(backbone: str, root: str | Path = DATA_ROOT) -> Path:
    """Where the shipped checkpoint of ``"bart"`` / ``"t5"`` lives."""
    backbone_class(backbone)
    return Path(root) / "checkpoints" / f"vg_{backbone}"


def load_backbone(backbone: str, data_root: str | Path = DATA_ROOT,
                  checkpoint: str | Path | None = None) -> tuple[VisionGuidedSeq2Seq, Any]:
    """The pretrained VG model and its tokenizer (the tokenizer is checked against it)."""
    backbone_class(backbone)
    tok = load_tokenizer(Path(data_root) / "tokenizer.json")
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(backbone, data_root)
    model = BACKBONES[backbone].from_checkpoint(path, tokenizer=tok)
    return model, tok


#: pretraining steps per backbone (T5's relative-position attention makes its steps ~1.6x slower)
PRETRAIN_STEPS = {"bart": 3000, "t5": 1800}


@dataclass
class PretrainConfig:
    """Size of the backbone and of its source-domain pretraining (defaults: the shipped ones)."""

    d_model: int = 64
    n_layers: int = 2  # encoder layers = decoder layers
    n_heads: int = 4
    ffn_dim: int = 256
    dropout: float = 0.1
    n_source: int = 20000  # source training videos (generated, not shipped)
    n_val: int = 200  # source validation videos (ROUGE reported on them)
    source_seed: int = 7
    steps: int | None = None  # None: PRETRAIN_STEPS[backbone] (sized for ~7 min on 2 CPU cores)
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 200
    time_limit_s: float = 480.0  # safety net: stop early to stay inside the ~10 min budget

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "ffn_dim", "n_source", "n_val",
                     "batch_size", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.steps is not None and (isinstance(self.steps, bool)
                                       or not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be None or a positive integer, got {self.steps!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be None or > 0, got {self.time_limit_s!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")



def pretrain(backbone: str = "bart", out: str | Path | None = None,
             config: PretrainConfig | None = None, seed: int = 0, data_root: str | Path = DATA_ROOT,
             threads: int | None = None, device: str | torch.device = "cpu",
             log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Pretrain a small VG-BART / VG-T5 on the source split and save it (``readpvla pretrain-vls``).

    The source split (``config.n_source`` videos of the 18 source tasks) is generated in memory
    with :func:`readpvla.data.how2.generate_split`; the tokenizer is ``data_root/tokenizer.json``.
    All weights train (the text transformer, the video projection and the fusion), with
    :func:`readpvla.tasks.vls.transfer.finetune` (linear warm-up and decay, validation loss every
    fifth of the budget, the best weights kept). ROUGE on the source validation split (greedy
    decoding) is reported and stored in the checkpoint's ``config.json`` under ``"pretraining"``.

    Args:
        backbone: ``"bart"`` or ``"t5"``.
        out: checkpoint folder (None: do not save; the shipped ones are
            :func:`checkpoint_path`).
        config: sizes and budget (:class:`PretrainConfig`).
        seed: initialisation and batch-order seed.
        threads: ``torch.set_num_threads`` for the run (None: leave as is).

    Returns:
        ``{"checkpoint", "rouge1", "rouge2", "rougeL", "val_loss", "steps", "time_s", ...}``.
    """
    from .transfer import TrainConfig, finetune

    cls = backbone_class(backbone)
    config = config or PretrainConfig()
    if threads is not None:
        torch.set_num_threads(threads)
    tok = load_tokenizer(Path(data_root) / "tokenizer.json")
    gen = How2Config()
    t0 = time.perf_counter()
    train = generate_split("source", config.n_source, config.source_seed, gen)
    val = generate_split("source", config.n_val, config.source_seed + 1, gen, prefix="source_val")
    torch.manual_seed(seed)
    model = cls.tiny(tok.get_vocab_size(), gen.video_dim, seed=seed, d_model=config.d_model,
                     n_layers=config.n_layers, n_heads=config.n_heads, ffn_dim=config.ffn_dim,
                     dropout=config.dropout).to(device)
    collate = How2Collator(tok)
    steps = config.steps or PRETRAIN_STEPS[backbone]
    tcfg = TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.lr,
                       warmup=config.warmup, eval_every=max(1, steps // 5),
                       time_limit_s=config.time_limit_s)
    hist = finetune(model, train, collate, tcfg, seed=seed, val=val[:100], log=log)
    model.eval()
    scores = evaluate(model, val, collate, num_beams=1)
    result = {"backbone": backbone, "rouge1": scores["rouge1"], "rouge2": scores["rouge2"],
              "rougeL": scores["rougeL"], "val_loss": hist["best_val_loss"],
              "steps": hist["steps"], "best_step": hist["best_step"],
              "time_s": time.perf_counter() - t0, "seed": seed, "config": asdict(config),
              "n_parameters": sum(p.numel() for p in model.parameters()),
              "example": {"reference": val[0].summary, "prediction": scores["predictions"][0]}}
    if out is not None:
        model.cpu().save_checkpoint(out, tokenizer=tok, extra={"pretraining": result})
        result["checkpoint"] = str(out)
    if log:
        log(f"{cls.__name__}: R1 {result['rouge1']:.2f} R2 {result['rouge2']:.2f} "
            f"RL {result['rougeL']:.2f} on {len(val)} source val videos, {result['steps']} steps, "
            f"{result['time_s']:.0f}s" + (f" -> {out}" if out is not None else ""))
    return result
