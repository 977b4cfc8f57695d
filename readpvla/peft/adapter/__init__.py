"""The Houlsby bottleneck adapter (Houlsby et al., 2019): down -> GELU -> up, residual; and its
parallel, scaled placement (AdaptFormer, Chen et al., NeurIPS 2022)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PeftConfig, Target, check_positive_int, check_target
from ..layer import WrapperLayer, factory_of, out_features

PLACEMENTS = ("ffn", "attn+ffn", "parallel")
ACTIVATIONS = ("gelu", "relu")
_ACT = {"gelu": F.gelu, "relu": F.relu}


@dataclass
class AdapterConfig(PeftConfig):
    """Houlsby adapter ``O~ = O + GELU(O W_down + b_down) W_up + b_up`` — READ without the RNN.

    By default it sits exactly where READ sits (after the FFN output), so the two differ only by
    the recurrence; ``placement="attn+ffn"`` adds the original paper's second adapter after the
    attention output projection.

    ``placement="parallel"`` is AdaptFormer (Chen et al., NeurIPS 2022, Eq. 3-4): the adapter
    sits *beside* a whole feed-forward module, on its input, and its output is scaled and added
    to the module's output::

        x_l = x'_l + MLP(LN(x'_l)) + s * ReLU(LN(x'_l) W_down) W_up

    Here the wrapped module is the block's MLP, whose input is already ``LN(x'_l)`` (CLIP's
    ``layer_norm2``), so the adapter reads exactly the paper's ``LN(x'_l)`` (the authors'
    released code feeds the un-normalised ``x'_l``; we follow the paper's equation). No recipe
    says where a whole FFN module is, so ``parallel`` needs ``target`` (a regex or names of the
    FFN modules, e.g. ``r"vision_model\\.encoder\\.layers\\.\\d+\\.mlp"`` for the video tower of
    :class:`readpvla.backbones.VideoCLIP` only). AdaptFormer's values: ``scale=0.1``,
    ``activation="relu"``, bottleneck 64 at width 768. Initialisation as every adapter here:
    ``W_up`` and both biases 0 (AdaptFormer's "lora" init also zeroes ``W_up``), so the model
    starts as the backbone.
    """

    #: k, the bottleneck width
    bottleneck: int = 4
    #: "ffn" (where READ sits), "attn+ffn" (Houlsby et al.'s two adapters per block) or
    #: "parallel" (AdaptFormer: beside each ``target`` FFN module, on its input)
    placement: str = "ffn"
    #: modules to wrap (None: from the recipe, per ``placement``; required for "parallel")
    target: Target = None
    #: s, the adapter output's scale (Houlsby: 1; AdaptFormer: 0.1)
    scale: float = 1.0
    #: the bottleneck's nonlinearity: "gelu" (Houlsby, as READ) or "relu" (AdaptFormer)
    activation: str = "gelu"

    method = "adapter"

    def validate(self) -> None:
        check_positive_int("bottleneck", self.bottleneck)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        check_target(self.target)
        if self.placement == "parallel" and self.target is None:
            raise ValueError("placement='parallel' wraps whole feed-forward modules, which no "
                             "recipe names: pass target (a regex or names of the FFN modules, "
                             "e.g. r'vision_model\\.encoder\\.layers\\.\\d+\\.mlp')")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float) \
                or not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    def inject(self, model: nn.Module) -> None:
        from ..mapping import wrap_targets

        def make(base: nn.Module, name: str) -> nn.Module:
            if self.placement == "parallel":
                return ParallelAdapterLayer(base, self.bottleneck, name, self.scale,
                                            self.activation)
            return AdapterLayer(base, self.bottleneck, name, self.scale, self.activation)

        wrap_targets(model, self.target, "ffn", "Adapter", make)
        if self.placement == "attn+ffn" and self.target is None:
            wrap_targets(model, None, "attn", "Adapter", make)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        from ..mapping import is_wrapper_param

        return is_wrapper_param(model, name, AdapterLayer)


class AdapterLayer(WrapperLayer):
    """Bottleneck adapter on a layer's output, ``o + s * up(act(down(o)))``; ``w_up`` and
    ``b_up`` start at 0 (identity). ``d``: the width it maps (default the layer's output)."""

    def __init__(self, base_layer: nn.Module, bottleneck: int, name: str = "",
                 scale: float = 1.0, activation: str = "gelu", d: int | None = None) -> None:
        super().__init__(base_layer)
        d = out_features(base_layer, name) if d is None else d
        factory = factory_of(base_layer)
        self.scale, self.activation = float(scale), activation
        self.w_down = nn.Linear(d, bottleneck, **factory)
        self.w_up = nn.Linear(bottleneck, d, **factory)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.w_down.weight)
            nn.init.zeros_(self.w_down.bias)
            nn.init.zeros_(self.w_up.weight)
            nn.init.zeros_(self.w_up.bias)

    def bottleneck_out(self, h: Tensor) -> Tensor:
        """``s * up(act(down(h)))`` (``s = 1`` adds no multiplication: the Houlsby default
        stays bit for bit what it was)."""
        z = self.w_up(_ACT[self.activation](self.w_down(h)))  # (..., d)
        return z if self.scale == 1.0 else self.scale * z

    def adapt(self, o: Tensor) -> Tensor:
        return o + self.bottleneck_out(o)


def _ffn_width(module: nn.Module, name: str) -> int:
    """The width an FFN module maps to itself: its first Linear's input = its last one's output."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"Adapter (parallel): {name} ({type(module).__name__}) holds no "
                         "nn.Linear; target the feed-forward modules (e.g. '...mlp')")
    d_in, d_out = linears[0].in_features, linears[-1].out_features
    if d_in != d_out:
        raise ValueError(f"Adapter (parallel): {name} maps width {d_in} to {d_out}; a parallel "
                         "adapter needs a module whose input and output widths agree (a whole "
                         "FFN, e.g. '...mlp', not one of its layers)")
    return d_in


class ParallelAdapterLayer(AdapterLayer):
    """AdaptFormer's adapter: ``base(h) + s * up(act(down(h)))`` on the wrapped module's input
    ``h`` (:class:`AdapterConfig`, ``placement="parallel"``)."""

    def __init__(self, base_layer: nn.Module, bottleneck: int, name: str = "",
                 scale: float = 0.1, activation: str = "relu") -> None:
        super().__init__(base_layer, bottleneck, name, scale, activation,
                         d=_ffn_width(base_layer, name))

    def forward(self, h: Tensor, *args, **kwargs) -> Tensor:
        return self.base_layer(h, *args, **kwargs) + self.bottleneck_out(h)  # (..., d)


__all__ = ["ACTIVATIONS", "PLACEMENTS", "AdapterConfig", "AdapterLayer", "ParallelAdapterLayer"]
