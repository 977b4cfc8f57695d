"""RAP's hyperparameters: which parts run (LoRM, ASA, text modulation), rank, top-K, and the
ablation switches of the paper's Tables 4, 6, 7 and 9 (Cao et al., ACL Findings 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..config import PeftConfig, check_positive_int
from ..layer import factory_of

SELECTIONS = ("text", "random", "all")
WARPS = ("both", "temporal", "spatial")
OFFSETS = ("learned", "zero")


@dataclass
class RAPConfig(PeftConfig):
    """RAP = low-rank modulation (LoRM, Eq. 1-3) + asynchronous self-attention (ASA, Eq. 4-8) in
    the video tower of a dual encoder, everything else frozen.

    The backbone must declare where its frames and patches are (``readpvla_rap_slots()``, see
    :mod:`readpvla.peft.rap.layer`); :class:`readpvla.backbones.VideoCLIP` does. Defaults are the
    paper's (R = 3, K = 3, both modules in every layer of the video tower).
    """

    #: R, the temporal rank of the video scale and shift (Eq. 1; paper: 3, Table 9)
    rank: int = 3
    #: K, patches per frame that ASA warps (Eq. 6; paper: 3, Table 9)
    top_k: int = 3
    #: low-rank modulation of the video tokens (Eq. 1-2) in the chosen layers
    lorm: bool = True
    #: asynchronous self-attention (Eq. 5-8) in the chosen layers
    asa: bool = True
    #: scale and shift of the sentence feature (Eq. 3)
    text: bool = True
    #: which patches ASA warps: "text" (top-K by similarity to the best-matching candidate
    #: sentence, Eq. 5-6, the paper's text-top-K), "random" (K random patches per frame), "all"
    #: (every patch: the paper's "no selection", Table 6)
    selection: str = "text"
    #: which offsets ASA learns: "both" (frame delta and patch gamma, Eq. 7), "temporal"
    #: (delta only, Table 7's T-Warp), "spatial" (gamma only, S-Warp)
    warp: str = "both"
    #: "learned" offsets, or "zero": fixed at 0, so ASA is vanilla attention (a control)
    offsets: str = "learned"
    #: indices of the video tower's blocks that get LoRM / ASA (None: all; the paper's
    #: RAP_light uses the last four)
    layers: tuple[int, ...] | None = None
    #: also train SSF (a scale and shift after every linear layer and LayerNorm of both towers,
    #: :class:`readpvla.peft.SSFConfig`): the base the paper's Table 4 implies (module docstring
    #: of :mod:`readpvla.peft.rap.layer`, "Parameters")
    ssf: bool = False

    method = "rap"

    def validate(self) -> None:
        check_positive_int("rank", self.rank)
        check_positive_int("top_k", self.top_k)
        for name in ("lorm", "asa", "text", "ssf"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (self.lorm or self.asa or self.text):
            raise ValueError("RAP with lorm, asa and text all False trains nothing; enable one")
        for name, allowed in (("selection", SELECTIONS), ("warp", WARPS), ("offsets", OFFSETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.layers is not None:
            if isinstance(self.layers, list):
                self.layers = tuple(self.layers)  # JSON gives lists
            if not isinstance(self.layers, tuple) or not self.layers or any(
                    isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.layers):
                raise ValueError(f"layers must be None or a non-empty list of block indices >= 0, "
                                 f"got {self.layers!r}")
            if len(set(self.layers)) != len(self.layers):
                raise ValueError(f"layers has repeated indices: {self.layers!r}")

    def inject(self, model: nn.Module) -> None:
        from .layer import RAPModule

        slots_fn = getattr(model, "readpvla_rap_slots", None)
        if slots_fn is None:
            raise ValueError(
                f"RAP needs a video-text backbone that declares its frame / patch grid "
                f"(readpvla_rap_slots) and runs RAP in its video tower; {type(model).__name__} "
                "does not. Use readpvla.backbones.VideoCLIP.")
        factory = factory_of(model)
        model.readpvla_rap = RAPModule(self, **slots_fn(), **factory)
        if self.ssf:
            from ..ssf import SSFConfig

            SSFConfig().inject(model)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        if self.ssf:
            from ..mapping import is_wrapper_param
            from ..ssf import SSFLayer

            if is_wrapper_param(model, name, SSFLayer):
                return True
        return name.startswith("readpvla_rap.")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if d["layers"] is not None:
            d["layers"] = list(d["layers"])
        return d


__all__ = ["OFFSETS", "SELECTIONS", "WARPS", "RAPConfig"]
