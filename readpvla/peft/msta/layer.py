r"""MSTA's modules: the multimodal spatiotemporal adapter beside each chosen block of both towers.

Chen et al., "Efficient Transfer Learning for Video-language Foundation Models" (ETL4Video),
CVPR 2025, Section 3. No code was released (the repository holds a README, logs and the LLM
description files); every choice the paper leaves open is marked **(choice)** below.

**The adapter (Sec. 3.2).** In block j of a tower, beside the block (on its input)::

    x_j = E_j(x_{j-1}) + lambda * A_j(x_{j-1})                                 lambda = scale

    text:   A_t(x) = W_t^ku z_t,                  z_t = relu(W^ks relu(W_t^kd LN_1(x)))
    video:  A_v(x) = u + W_v^ku-t * u,  u = W_v^ku-s z_v,  z_v = relu(W^ks relu(W_v^kd LN_1(x)))

W_v^kd ``[k, d_v]`` and W_t^kd ``[k, d_t]`` are the modality-specific down-projections, W^ks
``[k, k]`` the bottleneck projection **shared** by both towers (one ``nn.Parameter``, so it
receives gradient from both: :attr:`MSTAModule.shared`), W_v^ku-s ``[d_v, k]`` and W_t^ku
``[d_t, k]`` the up-projections, all with biases. ``W_v^ku-t *`` is the temporal up-projection:
a 3-D convolution over the ``[T, H', W']`` grid of each video's patch tokens, whose output is
added to the spatial one.

**(choice) The temporal up-projection is a depthwise convolution on u**, kernel
``(temporal_kernel, 1, 1)`` = (3, 1, 1), zero padding 1 in time, one filter per channel, with
bias. The logs pin this down: with ViCLIP-B's widths (d_v = 768, d_t = 512), k = 128 and blocks
8-12, the down / shared / up layers hold 345,728 parameters per block, and the logged 1.744 M
leaves exactly 3,072 = 768 x (3 + 1) per block: a depthwise (3, 1, 1) convolution with bias on
the 768 channels of u (and k = 256 in all 12 blocks gives 8.71 M, the paper's 8.7 M for
base-to-novel); tests/test_msta.py counts both. With a 1 x 1 spatial extent the convolution over
``[T, H', W']`` is the same temporal filter at every patch position; **(choice)** we run it at
the CLS (and any prompt) position of the frames too, as a ``[T, 1, 1]`` column. Otherwise the
last block's convolution would be dead: its patch outputs never reach the pooled per-frame CLS
states (measured: exactly zero gradient). Padded frames (``frame_mask`` False) enter the
convolution as zeros, like the padding past the last frame, so a padded video equals the same
video cut to its real frames.

**(choice) Input and nonlinearity, from MMA** (Yang et al., CVPR 2024, the multi-modal adapter
MSTA builds on, whose code is public): A_j reads the block's own frozen first LayerNorm of its
input (``layer_norm1``; a post-LN BERT block has none and its input is already normalised), and
ReLU follows the down- and the shared projection. MMA also rescales the adapter's gradients by
1 / lambda; we do not, as AdamW's steps do not depend on the gradient's scale.

**(choice) Initialisation.** The paper: "all modules in MSTA are initialized using Kaiming
initialization". ``init="kaiming"``: every linear weight Kaiming-normal (fan-out, ReLU gain) and
biases 0, as MMA; the convolution Kaiming-normal over its own fan-in (its T taps, linear gain),
so its output is on the scale of u. The adapter then changes the output from step 0 (by lambda
times an O(1) term) and every parameter gets a gradient at step 0. ``init="zero"`` zeroes the
up-projections and the convolution's bias: the model starts as exactly the backbone, and at step
0 only those get a gradient (the zero up-projections block the rest, as LoRA's zero B does).

**(choice) Blocks.** ``start .. end`` index the video tower (0-based, inclusive). Block j of the
video tower shares its bottleneck with block ``j + L_t - L_v`` of the text tower: the towers
are aligned at the top, as the paper injects "from the k-th block to the final block L" (equal
depths, as ViCLIP's, pair block j with block j). **(choice) Text tokens:** the text adapter
sees every token of every text (a per-token map: padding never reaches a real token, and only
the pooled tokens reach the sentence embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MSTAConfig

__all__ = ["MSTAModule"]

Run = Callable[[nn.Module, Tensor, int], Tensor]


def _norm1(layer: nn.Module) -> Callable[[Tensor], Tensor]:
    """The block's pre-attention LayerNorm (CLIP's ``layer_norm1``), or the identity."""
    norm = getattr(layer, "layer_norm1", None)
    return norm if isinstance(norm, nn.Module) else (lambda x: x)


class _TextHook:
    """Forward hook on text block ``j``: adds ``lambda * A_t(x)`` to the block's output, ``x``
    its input (a plain object, so ``copy.deepcopy`` of the model copies it with the model)."""

    def __init__(self, msta: MSTAModule, j: int) -> None:
        self.msta, self.j = msta, j

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: object) -> object:
        x = args[0] if args else kwargs["hidden_states"]  # (B, L, d_t)  the block's input
        a = self.msta.scale * self.msta.text_adapter(self.j, module, x)
        if isinstance(output, tuple):  # transformers 4 returns (hidden_states, ...)
            return (output[0] + a, *output[1:])
        return output + a


class MSTAModule(nn.Module):
    """All of MSTA's parameters and the two per-block adapters (module docstring).

    Attached to a backbone as ``readpvla_msta`` by :class:`MSTAConfig`. The backbone's video
    tower wraps its per-block runner with :meth:`video_run`; the text blocks get forward hooks
    (:meth:`hook_text`), so any text tower (CLIP's, BERT / MiniLM) works unchanged. Parameters,
    per injected video block j (key ``str(j)``): ``video_down``, ``video_up``,
    ``video_temporal``, ``text_down``, ``text_up``, and ``shared`` (or ``video_mid`` /
    ``text_mid`` with ``shared=False``).
    """

    def __init__(self, config: MSTAConfig, vision_layers: int, text_layers: int,
                 vision_width: int, text_width: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.config = config
        self.scale = float(config.scale)
        end = vision_layers - 1 if config.end is None else config.end
        if end >= vision_layers or config.start >= vision_layers:
            raise ValueError(f"MSTA blocks {config.start}..{end} out of range: the video tower "
                             f"has {vision_layers} blocks (0..{vision_layers - 1})")
        self.blocks = tuple(range(config.start, end + 1))
        self.video = config.branches in ("both", "vision")
        self.text = config.branches in ("both", "text")
        self.text_offset = text_layers - vision_layers  # text block of video block j: j + offset
        if self.text and config.start + self.text_offset < 0:
            raise ValueError(f"MSTA block {config.start} has no text partner: the text tower has "
                             f"{text_layers} blocks, the video tower {vision_layers} (aligned at "
                             "the top)")
        k = config.resolved_width(vision_width)
        self.width = k
        ids = [str(j) for j in self.blocks]

        def linears(n_in: int, n_out: int, on: bool = True) -> nn.ModuleDict:
            return nn.ModuleDict({i: nn.Linear(n_in, n_out, **factory) for i in ids} if on else {})

        self.video_down = linears(vision_width, k, self.video)  # W_v^kd
        self.video_up = linears(k, vision_width, self.video)  # W_v^ku-s
        self.text_down = linears(text_width, k, self.text)  # W_t^kd
        self.text_up = linears(k, text_width, self.text)  # W_t^ku
        self.shared = linears(k, k, config.shared)  # W^ks, one per block for both towers
        self.video_mid = linears(k, k, self.video and not config.shared)
        self.text_mid = linears(k, k, self.text and not config.shared)
        kt = config.temporal_kernel
        self.video_temporal = nn.ModuleDict({
            i: nn.Conv3d(vision_width, vision_width, (kt, 1, 1), padding=(kt // 2, 0, 0),
                         groups=vision_width, **factory)
            for i in ids} if self.video and config.temporal else {})  # W_v^ku-t
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of :attr:`MSTAConfig.init` (module docstring)."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Conv3d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
                    nn.init.zeros_(m.bias)
            if self.config.init == "zero":
                for up in (*self.video_up.values(), *self.text_up.values()):
                    nn.init.zeros_(up.weight)
                    nn.init.zeros_(up.bias)

    # -- the bottleneck --------------------------------------------------------------------------
    def _mid(self, key: str, tower: str) -> nn.Linear:
        return self.shared[key] if self.config.shared else getattr(self, f"{tower}_mid")[key]

    def _bottleneck(self, key: str, tower: str, u: Tensor) -> Tensor:
        """``relu(W^ks relu(W^kd u))``, ``[.., d] -> [.., k]``."""
        z = F.relu(getattr(self, f"{tower}_down")[key](u))
        return F.relu(self._mid(key, tower)(z))

    # -- text ------------------------------------------------------------------------------------
    def text_adapter(self, j: int, layer: nn.Module, x: Tensor) -> Tensor:
        """A_t(x) of video block j's partner, ``x [B, L, d_t]`` -> ``[B, L, d_t]``."""
        key = str(j)
        return self.text_up[key](self._bottleneck(key, "text", _norm1(layer)(x)))

    def hook_text(self, blocks: Sequence[nn.Module]) -> None:
        """Register the text adapters as forward hooks on the text tower's ``blocks``."""
        if not self.text:
            return
        for j in self.blocks:
            i = j + self.text_offset
            if not 0 <= i < len(blocks):
                raise ValueError(f"MSTA text block {i} (partner of video block {j}) is out of "
                                 f"range: the text tower has {len(blocks)} blocks")
            blocks[i].register_forward_hook(_TextHook(self, j), with_kwargs=True)

    # -- video -----------------------------------------------------------------------------------
    def video_adapter(self, j: int, layer: nn.Module, x: Tensor, b: int, t: int, p: int,
                      frame_mask: Tensor) -> Tensor:
        """A_v(x) in video block j. ``x``: ``[B*T, P, d_v]`` (frames) or ``[B, T*P, d_v]``
        (spatiotemporal), tokens in (video, frame, position) order; ``frame_mask [B, T]`` True =
        real frame."""
        key = str(j)
        u = self.video_up[key](self._bottleneck(key, "video", _norm1(layer)(x)))  # spatial
        if key not in self.video_temporal:
            return u
        d = u.shape[-1]
        grid = u.reshape(b, t, p, d) * frame_mask[:, :, None, None].to(u.dtype)  # (B, T, P, d)
        vol = grid.permute(0, 3, 1, 2)[..., None]  # (B, d, T, P, 1)  every position along time
        conv = self.video_temporal[key](vol)[..., 0].permute(0, 2, 3, 1)  # (B, T, P, d)
        return u + conv.reshape(u.shape)

    def video_run(self, run: Run, b: int, t: int, p: int, frame_mask: Tensor) -> Run:
        """``run(layer, x, j)`` (block j of the video tower) with ``+ lambda * A_v(x)`` beside
        the chosen blocks, for a batch of ``b`` videos of ``t`` frames of ``p`` tokens."""
        if not self.video:
            return run
        chosen = set(self.blocks)

        def wrapped(layer: nn.Module, x: Tensor, j: int) -> Tensor:
            out = run(layer, x, j)
            if j not in chosen:
                return out
            return out + self.scale * self.video_adapter(j, layer, x, b, t, p, frame_mask)

        return wrapped
