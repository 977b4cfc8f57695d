"""The READ layer: Eq. 5 of the paper, wrapped around the FFN's output projection."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layer import WrapperLayer, factory_of, out_features
from ..layout import active_layout

if TYPE_CHECKING:
    from .config import READConfig

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class READLayer(WrapperLayer):
    """``O~ = O + GELU(RNN(O W_down + b_down)) W_up`` (paper Eq. 5), O = ``base_layer(x)``.

    The recurrence runs along the token axis (dim -2) of each sequence, never across the batch:
    an output without a token axis (``[B, d]``, e.g. a pooler) raises ``ValueError`` naming the
    module, as does an unbatched ``[T, d]`` sequence (the two cannot be told apart; add the batch
    axis).
    Under a :func:`~readpvla.peft.token_layout` it skips padded positions (their adapter output
    is 0, so O~ = O there) and restarts at every modality segment. Under a frame-grid layout
    (``token_layout(scope, grid=(T, P))``, video towers that run frames through an image
    transformer) it recurs along the frame axis instead: for each video and each token position
    p, over ``x[t=0, p], ..., x[T-1, p]``, skipping padded frames.

    Parameters (names from the paper): ``w_down`` (d -> k, with bias), ``rnn`` (k -> k),
    ``w_up`` (k -> d, no bias: Eq. 5 has none).
    """

    reads_token_layout = True

    def __init__(self, base_layer: nn.Module, config: READConfig, name: str = "") -> None:
        super().__init__(base_layer)
        self.module_name = name  # for error messages
        d, k = out_features(base_layer, name), config.bottleneck
        factory = factory_of(base_layer)
        self.cell = config.cell
        self.w_down = nn.Linear(d, k, bias=True, **factory)
        self.rnn = _CELLS[config.cell](k, k, batch_first=True, **factory)
        self.w_up = nn.Linear(k, d, bias=False, **factory)
        self.reset_adapter(config.init)

    @torch.no_grad()
    def reset_adapter(self, init: str = "identity") -> None:
        """Initialise the adapter. See :class:`~readpvla.peft.READConfig` ``init``."""
        # Both schemes: W_down Kaiming-normal, b_down = 0 (paper, Implementation details).
        nn.init.kaiming_normal_(self.w_down.weight)
        nn.init.zeros_(self.w_down.bias)
        # W_up = 0 keeps O~ = O at step 0 (the Houlsby / LoRA habit).
        nn.init.zeros_(self.w_up.weight)
        if init == "paper":
            # Literal paper: the recurrent layer and its biases are zero too. Then the RNN
            # outputs 0, GELU(0) = 0, and with W_up = 0 no gradient reaches anything: READ
            # never trains (DESIGN.md fact 1). Offered to show that failure.
            for p in self.rnn.parameters():
                p.zero_()
        else:
            # Keep PyTorch's default U(-1/sqrt(k), 1/sqrt(k)) for the cell: the RNN's output
            # is then nonzero, so W_up gets a gradient at step 0 and everything from step 1.
            bound = 1.0 / math.sqrt(self.rnn.hidden_size)
            for p in self.rnn.parameters():
                p.uniform_(-bound, bound)

    def adapt(self, o: Tensor) -> Tensor:
        if o.dim() < 3:
            where = self.module_name or type(self.base_layer).__name__
            raise ValueError(
                f"READ at {where!r}: output of shape {tuple(o.shape)} has no token axis. READ "
                "recurs along dim -2 of a [B, T, d] output; on a [B, d] output (a pooled vector) "
                "that is the batch, so item i would depend on items < i. Target only per-token "
                "layers (the FFN outputs); an unbatched [T, d] sequence needs its batch axis "
                "(x.unsqueeze(0))."
            )
        z = self.w_down(o)  # (B, T, k)   O W_down + b_down
        h = self.recur(z)  # (B, T, k)   RNN along tokens
        return o + self.w_up(F.gelu(h))  # (B, T, d)   Eq. 5

    def recur(self, z: Tensor) -> Tensor:
        """Run the cell along the token axis, honouring the active padding / segment layout."""
        squeeze = z.dim() == 2  # an unbatched (T, k) sequence
        if squeeze:
            z = z.unsqueeze(0)
        lead = z.shape[:-2]
        z3 = z.reshape(-1, *z.shape[-2:])  # (B, T, k)
        layout = active_layout(self)
        if layout is not None and layout.grid is not None:
            h = self._recur_frames(z3, layout)
        elif layout is None or layout.shape != tuple(z3.shape[:2]) or layout.trivial:
            h = self.rnn(z3)[0]
        else:
            h = self._recur_grouped(z3, layout)
        h = h.reshape(*lead, *h.shape[-2:])
        return h.squeeze(0) if squeeze else h

    def _recur_frames(self, z: Tensor, layout) -> Tensor:
        # [B*T, P, k] or [B, T*P, k] -> [B*P, T, k]: one row per (video, position), along frames
        b = layout.grid_videos(tuple(z.shape), f"READ at {self.module_name!r}")
        zt = layout.to_time_major(z)  # (B*P, T, k)
        pad = layout.time_major_layout(b)
        ht = self.rnn(zt)[0] if pad is None else self._recur_grouped(zt, pad)  # (B*P, T, k)
        return layout.from_time_major(ht, tuple(z.shape))

    def _recur_grouped(self, z: Tensor, layout) -> Tensor:
        # Move each (item, segment)'s real tokens to the left of its own row, in order; a
        # forward recurrence over a left-aligned row never sees the zero padding on its right.
        b, t, k = z.shape
        g = layout.groups(z.device)
        flat = z.reshape(b * t, k)
        packed = z.new_zeros(g.n_groups, g.max_len, k)
        packed[g.group, g.rank] = flat[g.flat_pos]
        h_packed = self.rnn(packed)[0]  # (G, L, k)
        h = z.new_zeros(b * t, k)  # padded positions: 0, so O~ = O there
        h[g.flat_pos] = h_packed[g.group, g.rank]
        return h.reshape(b, t, k)

    def extra_repr(self) -> str:
        return f"cell={self.cell}, k={self.w_down.out_features}"
