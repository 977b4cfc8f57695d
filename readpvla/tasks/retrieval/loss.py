r"""Retrieval task loss: the symmetric InfoNCE of CLIP (and CLIP4Clip), both directions.

.. math:: \mathcal L = \tfrac12\Big(\mathrm{CE}(s\,L V^\top, I) + \mathrm{CE}(s\,V L^\top, I)\Big)

over a batch of ``B`` (video, caption) pairs, ``L`` / ``V`` the unit text / video embeddings,
``s`` the learned logit scale (:func:`readpvla.backbones.video_clip.contrastive_loss`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["retrieval_loss"]


def retrieval_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """InfoNCE on a batch of :class:`~readpvla.tasks.retrieval.data.TrainBatches`, for
    :func:`readpvla.train.fit`; logs ``nce`` and the temperature ``scale``."""
    out = model(batch["frames"], batch["input_ids"], batch["attention_mask"], return_loss=True)
    scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
    return out.loss, {"nce": float(out.loss.detach()), "scale": scale}
