"""Prompt tuning (Jia et al., 2022): learnable tokens prepended to the video and the language
input; only those tokens train.

Prompts change the input sequence, so the backbone must say where its inputs are. A backbone
supports prompts by implementing ``readpvla_prompt_slots() -> {"video": d, "text": d}`` and, in
its ``forward``, prepending ``self.readpvla_prompts[slot]`` (``[n_tokens, d]``) to that input when
the attribute is set (extending the masks with True and dropping the prompt positions from
per-token outputs). readpvla's TLG backbones and VG-BART / VG-T5 do.

``slots`` picks which of the declared slots get prompts (default: all of them). On the video CLIP
``slots=("video",)`` is visual prompt tuning (VPT, Jia et al. 2022: prompts in the image tower
only) and ``slots=("text",)`` is CoOp (Zhou et al. 2022: learned context tokens on the text side
only; CoOp puts them before the class name, here after the first token like every text prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import PeftConfig, check_positive_int
from ..layer import factory_of


@dataclass
class PromptConfig(PeftConfig):
    """``n_tokens`` learnable prompt vectors per input slot (default: every slot the backbone
    declares; ``slots`` picks some)."""

    #: prompt tokens per slot
    n_tokens: int = 10
    #: std of the normal initialisation
    init_std: float = 0.02
    #: the slots that get prompts (names from the backbone's ``readpvla_prompt_slots()``, e.g.
    #: ``("video",)`` for VPT, ``("text",)`` for CoOp); None = every declared slot. A list (as
    #: the JSON config stores it) is accepted and kept as a tuple.
    slots: tuple[str, ...] | None = None

    method = "prompt"

    def validate(self) -> None:
        check_positive_int("n_tokens", self.n_tokens)
        if not isinstance(self.init_std, int | float) or not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")
        if self.slots is not None:
            if isinstance(self.slots, str) or not isinstance(self.slots, list | tuple) \
                    or not self.slots or not all(isinstance(s, str) for s in self.slots):
                raise ValueError(f"slots must be None or a non-empty sequence of slot names, "
                                 f"got {self.slots!r}")
            if len(set(self.slots)) != len(self.slots):
                raise ValueError(f"slots must not repeat a name, got {self.slots!r}")
            self.slots = tuple(self.slots)

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
        if self.slots is not None:
            unknown = [s for s in self.slots if s not in slots]
            if unknown:
                raise ValueError(f"unknown prompt slot(s) {unknown} for {type(model).__name__}; "
                                 f"it declares {sorted(slots)}")
            slots = {s: slots[s] for s in self.slots}
        factory = factory_of(model)
        prompts = nn.ParameterDict()
        for slot, dim in slots.items():
            p = torch.empty(self.n_tokens, dim, **factory)
            nn.init.normal_(p, std=self.init_std)
            prompts[slot] = nn.Parameter(p)
        model.readpvla_prompts = prompts

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return name.startswith("readpvla_prompts.")


__all__ = ["PromptConfig"]
