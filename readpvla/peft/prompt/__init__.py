"""Prompt tuning (Jia et al., 2022): learnable tokens prepended to the video and the language
input; only those tokens train.

Prompts change the input sequence, so the backbone must say where its inputs are. A backbone
supports prompts by implementing ``readpvla_prompt_slots() -> {"video": d, "text": d}`` and, in
its ``forward``, prepending ``self.readpvla_prompts[slot]`` (``[n_tokens, d]``) to that input when
the attribute is set (extending the masks with True and dropping the prompt positions from
per-token outputs). readpvla's TLG backbones and VG-BART / VG-T5 do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import PeftConfig, check_positive_int


@dataclass
class PromptConfig(PeftConfig):
    """``n_tokens`` learnable prompt vectors per input slot (video and text)."""

    #: prompt tokens per slot
    n_tokens: int = 10
    #: std of the normal initialisation
    init_std: float = 0.02

    method = "prompt"

    def validate(self) -> None:
        check_positive_int("n_tokens", self.n_tokens)
        if not isinstance(self.init_std, int | float) or not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")

    def inject(self, model: nn.Module) -> None:
        slots_fn = getattr(model, "readpvla_prompt_slots", None)
        if slots_fn is None:
            raise ValueError(
                f"Prompt tuning needs a backbone that declares its input slots "
                f"(readpvla_prompt_slots); {type(model).__name__} does not. Use readpvla's TLG "
                "backbones or readpvla.backbones.VGBart / VGT5, or peft's PromptTuning for "
                "text-only models."
            )
        slots = slots_fn()
        ref = next(iter(model.parameters()), None)
        factory = {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
        prompts = nn.ParameterDict()
        for slot, dim in slots.items():
            p = torch.empty(self.n_tokens, dim, **factory)
            nn.init.normal_(p, std=self.init_std)
            prompts[slot] = nn.Parameter(p)
        model.readpvla_prompts = prompts

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return name.startswith("readpvla_prompts.")


__all__ = ["PromptConfig"]
