"""READ: the REcurrent ADapter (paper Section 3.2, Eq. 5-6)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import PeftConfig, Target, check_positive_int, check_target

CELLS = ("rnn", "gru", "lstm")
INITS = ("identity", "paper")


@dataclass
class READConfig(PeftConfig):
    """Configuration of the recurrent adapter.

    Inserted after the feed-forward output O of every targeted block (Eq. 5)::

        O~ = O + GELU(RNN(O W_down + b_down)) W_up

    then the block's own residual + LayerNorm runs on O~ (Eq. 6). The backbone is frozen.
    """

    #: k, the bottleneck width (paper: k << d, as small as 4)
    bottleneck: int = 4
    #: the recurrence in the bottleneck: "rnn" (tanh Elman RNN, the paper's choice), "gru", "lstm"
    cell: str = "rnn"
    #: "identity": W_down Kaiming-normal, the cell at PyTorch's default, W_up = 0, so the model's
    #: output is unchanged at step 0 and every READ parameter trains from step 1 on.
    #: "paper": the Implementation details literally (W_down Kaiming-normal; W_up, the cell and
    #: all biases zero) — every gradient is exactly 0 forever (DESIGN.md fact 1).
    init: str = "identity"
    #: modules to wrap: None = the FFN output layers from the architecture's recipe; a regex
    #: (full match on module names) or a list of module names for anything else
    target: Target = None

    method = "read"

    def validate(self) -> None:
        check_positive_int("bottleneck", self.bottleneck)
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        check_target(self.target)

    def inject(self, model: nn.Module) -> None:
        from ..mapping import wrap_targets
        from .layer import READLayer

        wrap_targets(model, self.target, "ffn", "READ",
                     lambda base, name: READLayer(base, self, name), refuse=_refuse_pooled)

    def is_trainable(self, name: str, model: nn.Module) -> bool:
        from ..mapping import is_wrapper_param
        from .layer import READLayer

        return is_wrapper_param(model, name, READLayer)


def _refuse_pooled(model: nn.Module, names: list[str]) -> None:
    """READ recurs along dim -2: on a ``[B, d]`` output that is the batch (item i would depend on
    items < i). Refuse targets known to output one vector per item."""
    from ..recipes import no_token_axis

    pooled = no_token_axis(model, names)
    if pooled:
        raise ValueError(
            f"READ: {pooled[0]} outputs one vector per item (a pooler or classification head), "
            "with no token axis; READ's recurrence runs along the tokens of a [B, T, d] output, so "
            "there it would run across the batch. Leave it out of target "
            f"({len(pooled)} such module(s): {pooled})"
        )
