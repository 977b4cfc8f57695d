r"""Recognition task loss: cross-entropy over the classes' prompt embeddings (CLIP-style).

.. math:: p(c \mid x) = \mathrm{softmax}_c\big(s\,\langle v(x), t(\text{"a video of } c\text{"})
          \rangle\big), \qquad \mathcal L = -\log p(y \mid x)

with ``v`` / ``t`` the unit video / text embeddings and ``s`` the learned logit scale. The text
side runs every step (its adapter, if any, trains too).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["class_logits", "recognition_loss"]


def class_logits(model: nn.Module, frames: Tensor, class_tokens: dict[str, Tensor]) -> Tensor:
    """``s * <v, t_c>`` for every video and class, ``[B, C]``."""
    video = model.encode_video(frames)                                           # (B, D)
    text = model.encode_text(class_tokens["input_ids"], class_tokens["attention_mask"])  # (C, D)
    scale = model.logit_scale.exp().clamp(max=100.0)
    return scale * video @ text.t()


def recognition_loss(model: nn.Module, batch: dict[str, Any], class_tokens: dict[str, Tensor]
                     ) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy of the class logits (:func:`class_logits`), for :func:`readpvla.train.fit`;
    logs ``ce`` and the batch accuracy ``acc``."""
    dev = batch["frames"].device
    tok = {k: v.to(dev) for k, v in class_tokens.items()}
    logits = class_logits(model, batch["frames"], tok)
    loss = F.cross_entropy(logits, batch["labels"])
    acc = float((logits.argmax(-1) == batch["labels"]).float().mean())
    return loss, {"ce": float(loss.detach()), "acc": 100.0 * acc}
