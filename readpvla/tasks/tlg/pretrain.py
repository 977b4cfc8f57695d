"""TLG backbones and their pretraining on the synthetic source split.

``crossmodal`` is the paper's Section 3.1 transformer (:class:`~readpvla.backbones.tlg
.CrossModalTLG`), ``momentdetr`` a Moment-DETR-style joint encoder with a set decoder
(:class:`~readpvla.backbones.moment_detr.MomentDETR`). Both ship pretrained in
``data_samples/tlg/checkpoints/`` (``readpvla pretrain-tlg`` regenerates them).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from readpvla.backbones.checkpoint import save_backbone
from readpvla.data import collate_tlg, load_tlg
from readpvla.train import FitResult, fit

from .data import default_data_dir, ensure_source_splits
from .evaluate import TABLE_METRIC, evaluate
from .loss import saliency_loss, tlg_loss

__all__ = ["BACKBONES", "PRETRAIN", "build_backbone", "check_backbone", "default_checkpoint",
           "pretrain"]

#: short name -> backbone class name (see readpvla.backbones.checkpoint)
BACKBONES = {"crossmodal": "CrossModalTLG", "momentdetr": "MomentDETR"}


def check_backbone(backbone: str) -> None:
    """``ValueError`` unless ``backbone`` is ``"crossmodal"`` or ``"momentdetr"``."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")


def default_checkpoint(backbone: str) -> Path:
    """The shipped pretrained backbone: ``<repo>/data_samples/tlg/checkpoints/<backbone>``."""
    check_backbone(backbone)
    return default_data_dir() / "checkpoints" / backbone


def build_backbone(backbone: str = "crossmodal", **config: Any) -> nn.Module:
    """A freshly initialised backbone (``"crossmodal"`` or ``"momentdetr"``); ``config`` overrides
    fields of its config dataclass."""
    check_backbone(backbone)
    if backbone == "crossmodal":
        from readpvla.backbones.tlg import CrossModalTLG

        return CrossModalTLG(**config)
    from readpvla.backbones.moment_detr import MomentDETR

    return MomentDETR(**config)


#: pretraining recipe per backbone (same data). ``warmup_epochs``: epochs of saliency loss only
#: before the full task loss. The Moment-DETR-style model needs them: trained with the set loss
#: from the start, its joint encoder did not learn to match words to clips within our budget
#: (measured: saliency BCE stuck near 0.28, MR-full-mAP ~10 on source_val after 14 epochs); after
#: 3 saliency epochs it does. ``max_minutes`` None: stop by epochs only, so the run is
#: reproducible; pass a number to cap the wall time instead.
PRETRAIN = {
    "crossmodal": {"epochs": 30, "lr": 5e-4, "batch_size": 32, "weight_decay": 1e-4,
                   "patience": 5, "max_minutes": None, "max_grad_norm": 1.0,
                   "warmup_epochs": 0},
    "momentdetr": {"epochs": 30, "lr": 1e-3, "batch_size": 32, "weight_decay": 1e-4,
                   "patience": 8, "max_minutes": None, "max_grad_norm": 10.0,
                   "warmup_epochs": 3},
}


def pretrain(backbone: str = "crossmodal", data_dir: str | Path | None = None,
             out: str | Path | None = None, *, epochs: int | None = None, lr: float | None = None,
             batch_size: int | None = None, weight_decay: float | None = None,
             patience: int | None = None, max_minutes: float | None = None,
             warmup_epochs: int | None = None, seed: int = 0,
             device: str | torch.device = "cpu", progress: bool = True, **config: Any
             ) -> tuple[nn.Module, FitResult]:
    """Pretrain a backbone from scratch on ``source_train``, early-stopped on ``source_val``'s
    MR-full-mAP, and save it with :func:`~readpvla.backbones.checkpoint.save_backbone`.

    Args:
        backbone: ``"crossmodal"`` or ``"momentdetr"``.
        data_dir: folder with the source splits (default :func:`default_source_dir`; regenerated
            there if missing, see :func:`ensure_source_splits`).
        out: checkpoint directory (None: do not save).
        epochs, lr, batch_size, weight_decay, patience, max_minutes, warmup_epochs: override
            :data:`PRETRAIN`.
        seed: initialisation and shuffling seed.
        device: training device.
        progress: tqdm bar.
        **config: overrides of the backbone's config dataclass.

    Returns:
        ``(model, fit_result)``; the model holds the best validation epoch's weights.
    """
    check_backbone(backbone)
    rec = {**PRETRAIN[backbone]}
    for key, val in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size),
                     ("weight_decay", weight_decay), ("patience", patience),
                     ("max_minutes", max_minutes), ("warmup_epochs", warmup_epochs)):
        if val is not None:
            rec[key] = val
    src = ensure_source_splits(data_dir)
    train, val = load_tlg(src, "source_train"), load_tlg(src, "source_val")
    torch.manual_seed(seed)
    model = build_backbone(backbone, **config).to(device)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=rec["batch_size"], shuffle=True, generator=gen,
                        collate_fn=collate_tlg)
    max_seconds = 60.0 * rec["max_minutes"] if rec["max_minutes"] else None
    t0 = time.perf_counter()
    if rec["warmup_epochs"]:
        fit(model, saliency_loss, loader, epochs=rec["warmup_epochs"], lr=rec["lr"],
            weight_decay=rec["weight_decay"], seed=seed, device=device,
            max_grad_norm=rec["max_grad_norm"], max_seconds=max_seconds, progress=progress,
            desc=f"warm-up {backbone}")
        if max_seconds is not None:
            max_seconds = max(max_seconds - (time.perf_counter() - t0), 1e-3)
    result = fit(model, partial(tlg_loss, align="none"), loader, epochs=rec["epochs"],
                 lr=rec["lr"], weight_decay=rec["weight_decay"], seed=seed, device=device,
                 eval_fn=lambda m: evaluate(m, val), monitor=TABLE_METRIC,
                 patience=rec["patience"], max_seconds=max_seconds,
                 max_grad_norm=rec["max_grad_norm"], progress=progress,
                 desc=f"pretrain {backbone}")
    val_metrics = evaluate(model, val)
    if out is not None:
        save_backbone(model, out, meta={
            "backbone": backbone, "trained_on": "source_train", "validated_on": "source_val",
            "recipe": {**rec, "seed": seed, "loss": "task loss only (no alignment)",
                       "optimizer": "AdamW"},
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "seconds": round(time.perf_counter() - t0, 1), "source_val": val_metrics,
            "command": f"readpvla pretrain-tlg --backbone {backbone} "
                       + ("--no-video-positions " if config.get("video_positions") is False
                          else "") + f"--out {Path(out).as_posix()}",
        })
    return model, result


