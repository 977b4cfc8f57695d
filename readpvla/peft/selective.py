"""Methods that add nothing and only choose which backbone weights train.

- Full: every weight.
- Partial: only the last block of each block list (the last encoder and decoder layers).
- Bias (BitFit, Ben Zaken et al., 2022): only the bias terms.
- Proj: only the last linear projection (the recipe's ``proj``, else the last ``nn.Linear``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .config import PeftConfig, Target, check_target
from .recipes import block_lists, find_modules, match_target


@dataclass
class FullConfig(PeftConfig):
    """Full fine-tuning: every parameter trains."""

    method = "full"

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return True


@dataclass
class PartialConfig(PeftConfig):
    """Only the last ``n_last`` blocks of every block list (encoder, decoder, ...) train."""

    #: how many final blocks of each list train
    n_last: int = 1

    method = "partial"

    def validate(self) -> None:
        if isinstance(self.n_last, bool) or not isinstance(self.n_last, int) or self.n_last < 1:
            raise ValueError(f"n_last must be a positive integer, got {self.n_last!r}")

    def prefixes(self, model: nn.Module) -> list[str]:
        """Names of the trainable blocks."""
        lists = block_lists(model)
        if not lists:
            raise ValueError(f"Partial: found no transformer block list in {type(model).__name__}")
        return [b for elems in lists.values() for b in elems[-self.n_last:]]

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        cache = model.__dict__.setdefault("_readpvla_partial_prefixes", self.prefixes(model))
        return any(name.startswith(p + ".") for p in cache)


@dataclass
class BitFitConfig(PeftConfig):
    """BitFit: only parameters whose name ends in ``bias`` train."""

    method = "bias"

    def inject(self, model: nn.Module) -> None:
        if not any(self.is_trainable(n, model) for n, _ in model.named_parameters()):
            raise ValueError(f"BitFit: {type(model).__name__} has no bias parameters to train")

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return name == "bias" or name.endswith(".bias")


@dataclass
class ProjConfig(PeftConfig):
    """Only the model's last linear projection trains."""

    #: module(s) to train: None = the recipe's ``proj`` or else the last nn.Linear
    target: Target = None

    method = "proj"

    def validate(self) -> None:
        check_target(self.target)

    def modules(self, model: nn.Module) -> list[str]:
        """Names of the trained projection module(s)."""
        if self.target is not None:
            names = match_target(model, self.target)
        else:
            try:
                names = find_modules(model, "proj")
            except ValueError:
                names = []
            if not names:
                linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
                names = linears[-1:]
        if not names:
            raise ValueError(f"Proj: found no linear projection in {type(model).__name__}")
        return names

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        # by identity, not name: BART/T5 tie lm_head.weight to the input embedding, and
        # named_parameters() lists the shared tensor once, under the embedding's name
        ids = model.__dict__.get("_readpvla_proj_ids")
        if ids is None:
            mods = [model.get_submodule(m) for m in self.modules(model)]
            ids = {id(p) for m in mods for p in m.parameters()}
            model.__dict__["_readpvla_proj_ids"] = ids
        return id(model.get_parameter(name)) in ids


__all__ = ["BitFitConfig", "FullConfig", "PartialConfig", "ProjConfig"]
