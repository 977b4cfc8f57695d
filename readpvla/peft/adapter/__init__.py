"""The Houlsby bottleneck adapter (Houlsby et al., 2019): down -> GELU -> up, residual."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PeftConfig, Target, check_positive_int, check_target
from ..layer import WrapperLayer, factory_of, out_features

PLACEMENTS = ("ffn", "attn+ffn")


@dataclass
class AdapterConfig(PeftConfig):
    """Houlsby adapter ``O~ = O + GELU(O W_down + b_down) W_up + b_up`` — READ without the RNN.

    By default it sits exactly where READ sits (after the FFN output), so the two differ only by
    the recurrence; ``placement="attn+ffn"`` adds the original paper's second adapter after the
    attention output projection.
    """

    #: k, the bottleneck width
    bottleneck: int = 4
    #: "ffn" (where READ sits) or "attn+ffn" (Houlsby et al.'s two adapters per block)
    placement: str = "ffn"
    #: modules to wrap (None: from the recipe, per ``placement``)
    target: Target = None

    method = "adapter"

    def validate(self) -> None:
        check_positive_int("bottleneck", self.bottleneck)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        check_target(self.target)

    def inject(self, model: nn.Module) -> None:
        from ..mapping import wrap_targets

        def make(base: nn.Module, name: str) -> nn.Module:
            return AdapterLayer(base, self.bottleneck, name)

        wrap_targets(model, self.target, "ffn", "Adapter", make)
        if self.placement == "attn+ffn" and self.target is None:
            wrap_targets(model, None, "attn", "Adapter", make)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        from ..mapping import is_wrapper_param

        return is_wrapper_param(model, name, AdapterLayer)


class AdapterLayer(WrapperLayer):
    """Bottleneck adapter on a layer's output; ``w_up`` and ``b_up`` start at 0 (identity)."""

    def __init__(self, base_layer: nn.Module, bottleneck: int, name: str = "") -> None:
        super().__init__(base_layer)
        d = out_features(base_layer, name)
        factory = factory_of(base_layer)
        self.w_down = nn.Linear(d, bottleneck, **factory)
        self.w_up = nn.Linear(bottleneck, d, **factory)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.w_down.weight)
            nn.init.zeros_(self.w_down.bias)
            nn.init.zeros_(self.w_up.weight)
            nn.init.zeros_(self.w_up.bias)

    def adapt(self, o: Tensor) -> Tensor:
        return o + self.w_up(F.gelu(self.w_down(o)))


__all__ = ["AdapterConfig", "AdapterLayer"]
