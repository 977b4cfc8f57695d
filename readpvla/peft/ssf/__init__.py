"""SSF (Lian et al., NeurIPS 2022): scale and shift the features after every operation.

``y = gamma * x + beta`` (``gamma, beta: [d]``) on the output of every linear layer and every
LayerNorm inside the transformer blocks of the backbone (both towers of a dual encoder); all else
frozen. SSF is a baseline of the RAP paper (Table 1), and its Table 4 implies that RAP sits on
an SSF base (``RAPConfig(ssf=True)``). We start at ``gamma = 1, beta = 0`` (the backbone
unchanged at step 0; the paper draws them from N(1, 0.02) and N(0, 0.02)).

Reference: Lian, Zhou, Feng, Wang. Scaling & Shifting Your Features: A New Baseline for
Efficient Model Tuning. NeurIPS 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import PeftConfig, Target, check_target
from ..layer import WrapperLayer, factory_of, out_features
from ..recipes import block_lists, resolve_targets


@dataclass
class SSFConfig(PeftConfig):
    """A learned scale and shift after every linear layer and LayerNorm of the blocks."""

    #: modules to follow: None = every nn.Linear and nn.LayerNorm inside the transformer blocks;
    #: a regex or names
    target: Target = None

    method = "ssf"

    def validate(self) -> None:
        check_target(self.target)

    def target_names(self, model: nn.Module) -> list[str]:
        """The layers SSF follows."""
        if self.target is not None:
            return resolve_targets(model, self.target, what="SSF")
        blocks = [b for elems in block_lists(model).values() for b in elems]
        mha = {n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
        names = [n for n, m in model.named_modules()
                 if isinstance(m, nn.Linear | nn.LayerNorm) and any(n.startswith(b + ".")
                                                                   for b in blocks)
                 and n.rpartition(".")[0] not in mha]
        if not names:
            raise ValueError(f"SSF found no linear layer or LayerNorm in {type(model).__name__}")
        return names

    def inject(self, model: nn.Module) -> None:
        from ..mapping import wrap_targets

        names = self.target_names(model)
        wrap_targets(model, names, "ffn", "SSF", lambda base, name: SSFLayer(base, name))

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        from ..mapping import is_wrapper_param

        return is_wrapper_param(model, name, SSFLayer)


class SSFLayer(WrapperLayer):
    """``gamma * o + beta`` on a layer's output ``o [..., d]``."""

    def __init__(self, base_layer: nn.Module, name: str = "") -> None:
        super().__init__(base_layer)
        if isinstance(base_layer, nn.LayerNorm):
            d = int(base_layer.normalized_shape[-1])
        else:
            d = out_features(base_layer, name)
        factory = factory_of(base_layer)
        self.ssf_scale = nn.Parameter(torch.ones(d, **factory))
        self.ssf_shift = nn.Parameter(torch.zeros(d, **factory))

    def adapt(self, o: Tensor) -> Tensor:
        return o * self.ssf_scale + self.ssf_shift


__all__ = ["SSFConfig", "SSFLayer"]
