"""MSTA's hyperparameters: adapter width, scale lambda, the injected blocks, and the ablation
switches (which towers, shared bottleneck or not, temporal convolution or not); ETL4Video,
Chen et al., CVPR 2025."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..config import PeftConfig, check_positive_int
from ..layer import factory_of

BRANCHES = ("both", "vision", "text")
INITS = ("kaiming", "zero")
#: ViCLIP-B's logged adapter width (128) over its video tower's width (768): the default width
#: is this share of the backbone's video width
WIDTH_RATIO = 128 / 768


@dataclass
class MSTAConfig(PeftConfig):
    """MSTA = a multimodal spatiotemporal adapter beside blocks ``start .. end`` of both towers
    of a video-text dual encoder, everything else frozen (equations: :mod:`readpvla.peft.msta.layer`).

    ``x_j = E_j(x_{j-1}) + scale * A_j(x_{j-1})``. The backbone must declare its blocks and
    widths (``readpvla_msta_slots()``) and run the video adapters in its video tower;
    :class:`readpvla.backbones.VideoCLIP` does. Defaults: the logged ViCLIP-B values (scale
    0.005, Kaiming init, both towers, shared bottleneck, temporal convolution), every block
    (the base-to-novel setting; few-shot: the last 5 of 12, ``start = L - 5``) and a width scaled
    to the backbone (``width=None``).
    """

    #: k, the adapter width (bottleneck). None: ``max(1, round(d_v * 128 / 768))`` with d_v the
    #: video tower's width (ViCLIP-B logs k = 128 at d_v = 768; the offline video CLIP,
    #: d_v = 128, gets k = 21)
    width: int | None = None
    #: lambda, the adapter's output scale (logs: 0.005)
    scale: float = 0.005
    #: first injected block (0-based index into the video tower; the logs' "8-12 of 12" is
    #: start=7, end=11)
    start: int = 0
    #: last injected block, inclusive (None: the last block)
    end: int | None = None
    #: the towers that get adapters: "both" (MSTA), "vision" or "text" (the paper's single-tower
    #: ablations; the bottleneck then receives gradient from that tower only)
    branches: str = "both"
    #: one bottleneck projection W^ks per block used by both towers (the same nn.Parameter);
    #: False: a separate one per tower (the paper's "no shared layer" ablation)
    shared: bool = True
    #: the temporal up-projection (a depthwise 3-D convolution along the frames, over the
    #: [T, H', W'] patch grid and the CLS column);
    #: False: the spatial up-projection alone (video only; ignored with branches="text")
    temporal: bool = True
    #: the convolution's extent along time, odd (spatial extent 1 x 1)
    temporal_kernel: int = 3
    #: "kaiming" (the paper: every projection Kaiming-normal, biases 0, so the adapter changes
    #: the output from step 0) or "zero" (zero up-projections and convolution bias: the model
    #: starts as exactly the backbone, as LoRA / Houlsby adapters do)
    init: str = "kaiming"

    method = "msta"

    def validate(self) -> None:
        if self.width is not None:
            check_positive_int("width", self.width)
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float) \
                or not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"start must be a block index >= 0, got {self.start!r}")
        if self.end is not None:
            if isinstance(self.end, bool) or not isinstance(self.end, int) or self.end < 0:
                raise ValueError(f"end must be None or a block index >= 0, got {self.end!r}")
            if self.start > self.end:
                raise ValueError(f"start={self.start} is after end={self.end}: no block to "
                                 "inject into")
        if self.branches not in BRANCHES:
            raise ValueError(f"branches must be one of {BRANCHES}, got {self.branches!r}")
        for name in ("shared", "temporal"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_positive_int("temporal_kernel", self.temporal_kernel)
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd (the output keeps T frames), got "
                             f"{self.temporal_kernel}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")

    def inject(self, model: nn.Module) -> None:
        from .layer import MSTAModule

        slots_fn = getattr(model, "readpvla_msta_slots", None)
        if slots_fn is None:
            raise ValueError(
                f"MSTA needs a video-text backbone that declares its blocks and widths "
                f"(readpvla_msta_slots) and runs MSTA in its video tower; {type(model).__name__} "
                "does not. Use readpvla.backbones.VideoCLIP.")
        slots = dict(slots_fn())
        text_blocks = slots.pop("text_blocks")
        blocks = model.get_submodule(text_blocks) if self.branches != "vision" else []
        msta = MSTAModule(self, text_layers=len(blocks), **slots, **factory_of(model))
        model.readpvla_msta = msta
        msta.hook_text(blocks)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return name.startswith("readpvla_msta.")

    def resolved_width(self, vision_width: int) -> int:
        """k: :attr:`width`, or the logged share of the video tower's width."""
        return self.width if self.width is not None else max(1, round(vision_width * WIDTH_RATIO))


__all__ = ["BRANCHES", "INITS", "WIDTH_RATIO", "MSTAConfig"]
