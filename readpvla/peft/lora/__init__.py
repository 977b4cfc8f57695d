"""LoRA (Hu et al., 2021) through the Hugging Face ``peft`` library, not hand-written.

``peft.inject_adapter_in_model`` replaces each targeted ``nn.Linear`` by its LoRA layer in
place, so the model keeps its class and forward signature; readpvla then counts, saves and loads
it like every other method.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import PeftConfig, Target, check_positive_int, check_target
from ..recipes import block_lists, resolve_targets


@dataclass
class LoRAConfig(PeftConfig):
    """Low-rank update ``W x + (alpha / r) B A x`` on linear layers (B = 0 at start)."""

    #: r, the rank of the update
    r: int = 4
    #: alpha, the update's scale numerator
    alpha: float = 8.0
    #: dropout on the LoRA branch's input
    dropout: float = 0.0
    #: modules to adapt: None = every nn.Linear inside the transformer blocks; a regex or names
    target: Target = None

    method = "lora"

    def validate(self) -> None:
        check_positive_int("r", self.r)
        if not isinstance(self.alpha, int | float) or not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        check_target(self.target)

    def target_names(self, model: nn.Module) -> list[str]:
        """The linear layers LoRA goes on."""
        if self.target is not None:
            names = resolve_targets(model, self.target, what="LoRA")
        else:
            blocks = [b for elems in block_lists(model).values() for b in elems]
            mha = {n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
            names = [  # nn.MultiheadAttention never calls its out_proj: skip it
                n for n, m in model.named_modules()
                if isinstance(m, nn.Linear) and any(n.startswith(b + ".") for b in blocks)
                and n.rpartition(".")[0] not in mha
            ]
        bad = [n for n in names if not isinstance(model.get_submodule(n), nn.Linear)]
        if bad:
            raise ValueError(f"LoRA targets must be nn.Linear; {bad[0]} is "
                             f"{type(model.get_submodule(bad[0])).__name__}")
        from ..mapping import check_called

        check_called(model, names, "LoRA")
        if not names:
            raise ValueError(f"LoRA found no linear layer to adapt in {type(model).__name__}")
        return names

    def inject(self, model: nn.Module) -> None:
        import peft

        names = self.target_names(model)
        lora = peft.LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
            target_modules=names, bias="none",
        )
        peft.inject_adapter_in_model(lora, model)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        return ".lora_A." in name or ".lora_B." in name


__all__ = ["LoRAConfig"]
