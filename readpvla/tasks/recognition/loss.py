r"""Recognition task loss: cross-entropy over the classes' prompt embeddings (CLIP-style), and
MSTA's spatiotemporal consistency constraint L_CC.

.. math:: p(c \mid x) = \mathrm{softmax}_c\big(s\,\langle v(x), t(\text{"a video of } c\text{"})
          \rangle\big), \qquad \mathcal L_{CE} = -\log p(y \mid x)

with ``v`` / ``t`` the unit video / text embeddings and ``s`` the learned logit scale. The text
side runs every step (its adapter, if any, trains too). The class prompts' embeddings are the
candidate sentences of RAP's text-conditioned patch selection (``encode_video(..., texts=)``;
ignored by every other method), as a retrieval batch's captions are.

**L_CC** (ETL4Video, Chen et al. 2025, Sec. 3.3). A frozen copy of the pretrained text branch
encodes N spatial and N temporal descriptions of every class (:mod:`.descriptions`); their
means are D_s^c and D_t^c. The trainable branch encodes the class prompt, w^c = t("a video of
c"), and

.. math:: \mathcal L_{CC} = \frac{1}{C}\sum_c \big(2 - \cos(w^c, D_s^c) - \cos(w^c, D_t^c)\big),
          \qquad \mathcal L = \mathcal L_{CE} + \alpha\,\mathcal L_{CC}, \quad \alpha = 1.

**(choice)** The frozen branch never changes, so D_s and D_t are computed once, before training,
from the pretrained backbone (:func:`consistency_targets`): the same numbers a frozen copy would
give at every step, at no cost. D^c is the mean of the descriptions' unit embeddings (the cosine
ignores its norm); L_CC averages over all C training classes every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .descriptions import ClassDescriptions, generate, load_etl4video

__all__ = ["Consistency", "ConsistencyTargets", "class_logits", "consistency_loss",
           "consistency_targets", "describe_row_loss", "recognition_loss", "row_loss"]


def class_logits(model: nn.Module, frames: Tensor, class_tokens: dict[str, Tensor]) -> Tensor:
    """``s * <v, t_c>`` for every video and class, ``[B, C]``."""
    return _logits(model, frames, class_tokens)[0]


def _logits(model: nn.Module, frames: Tensor, class_tokens: dict[str, Tensor]
            ) -> tuple[Tensor, Tensor]:
    text = model.encode_text(class_tokens["input_ids"], class_tokens["attention_mask"])  # (C, D)
    video = model.encode_video(frames, texts=text)                               # (B, D)
    scale = model.logit_scale.exp().clamp(max=100.0)
    return scale * video @ text.t(), text


def _towers(model: nn.Module, frames: Tensor, class_tokens: dict[str, Tensor]
            ) -> tuple[Tensor, Tensor, Any, Any]:
    """As :func:`_logits`, also the towers' token outputs (an alignment loss needs them)."""
    text = model.text_tower(class_tokens["input_ids"], class_tokens["attention_mask"])  # (C, L, D)
    video = model.video_tower(frames, texts=text.embeds)                           # (B, T, D)
    scale = model.logit_scale.exp().clamp(max=100.0)
    return scale * video.embeds @ text.embeds.t(), text.embeds, video, text


def consistency_loss(w: Tensor, d_s: Tensor, d_t: Tensor) -> Tensor:
    """``mean_c (2 - cos(w^c, D_s^c) - cos(w^c, D_t^c))`` for ``w``, ``d_s``, ``d_t`` ``[C, D]``
    (any norms). 0 when every w^c points along both of its description means; at most 4."""
    if w.dim() != 2 or w.shape != d_s.shape or w.shape != d_t.shape:
        raise ValueError(f"w, d_s and d_t must be [C, D] of one shape, got {list(w.shape)}, "
                         f"{list(d_s.shape)}, {list(d_t.shape)}")
    cos_s = F.cosine_similarity(w, d_s.to(w.dtype), dim=-1)  # (C,)
    cos_t = F.cosine_similarity(w, d_t.to(w.dtype), dim=-1)  # (C,)
    return (2 - cos_s - cos_t).mean()


@dataclass(frozen=True)
class ConsistencyTargets:
    """D_s, D_t ``[C, D]`` (rows in the order of the class prompts) and the weight alpha."""

    d_s: Tensor
    d_t: Tensor
    alpha: float = 1.0


@torch.no_grad()
def consistency_targets(backbone: nn.Module, descriptions: ClassDescriptions,
                        classes: Sequence[str], alpha: float = 1.0) -> ConsistencyTargets:
    """D_s^c, D_t^c of every class in ``classes`` (the prompts' order) from the **pretrained**
    ``backbone``'s text tower (eval mode, no gradient; the backbone is left as it was).

    Raises:
        ValueError: ``backbone`` carries an adapter (pass the backbone before ``peft.apply``:
            L_CC's targets come from the pretrained branch), or a class has no descriptions.
    """
    if getattr(backbone, "readpvla_config", None) is not None:
        raise ValueError("consistency_targets needs the pretrained backbone (the frozen branch), "
                         f"but this one carries a {backbone.readpvla_config.method!r} adapter")
    was = backbone.training
    backbone.eval()
    try:
        dev = next(backbone.parameters()).device
        means: dict[str, list[Tensor]] = {"spatial": [], "temporal": []}
        for c in classes:
            for kind, texts in descriptions.of(c).items():
                tok = backbone.tokenize(texts)
                e = backbone.encode_text(tok["input_ids"].to(dev), tok["attention_mask"].to(dev))
                means[kind].append(e.mean(0))  # (D,)  mean of N unit embeddings
    finally:
        backbone.train(was)
    return ConsistencyTargets(torch.stack(means["spatial"]), torch.stack(means["temporal"]),
                              float(alpha))


def recognition_loss(model: nn.Module, batch: dict[str, Any], class_tokens: dict[str, Tensor],
                     consistency: ConsistencyTargets | None = None, align: str | None = None,
                     lam: float = 0.1) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy of the class logits (:func:`class_logits`), plus ``alpha * L_CC`` with
    ``consistency``, plus ``lam`` x an alignment loss with ``align`` (READ-PVLA: ``"pvla"``), for
    :func:`readpvla.train.fit`; logs ``ce``, ``cc`` (with consistency), ``align`` (with align)
    and the batch accuracy ``acc``.

    **(choice) The alignment term in recognition.** Retrieval aligns each video's projected
    frames with the words of its caption (:mod:`readpvla.tasks.retrieval.loss`); here a video's
    only text is its class prompt, so each video's frames ``[T, D]`` are aligned with the word
    tokens ``[L, D]`` of *its own* class prompt (matched pairs only, as PVLA), with the
    retrieval task's PVLA settings (mass 0.5, tau 0.05, at most 100 iterations)."""
    dev = batch["frames"].device
    tok = {k: v.to(dev) for k, v in class_tokens.items()}
    labels = batch["labels"]
    if align is None:
        logits, text = _logits(model, batch["frames"], tok)
    else:
        logits, text, v_out, t_out = _towers(model, batch["frames"], tok)
    ce = F.cross_entropy(logits, labels)
    acc = float((logits.argmax(-1) == labels).float().mean())
    logs = {"ce": float(ce.detach()), "acc": 100.0 * acc}
    loss = ce
    if consistency is not None:
        cc = consistency_loss(text, consistency.d_s.to(dev), consistency.d_t.to(dev))
        loss = loss + consistency.alpha * cc
        logs["cc"] = float(cc.detach())
    if align is not None:
        from readpvla import ot
        from readpvla.tasks.tlg.loss import MASS, PVLA_MAX_ITER, PVLA_TOL, TAU

        kw: dict[str, Any] = {}
        if align in ("pvla", "vla"):
            kw = {"tau": TAU, "max_iter": PVLA_MAX_ITER, "tol": PVLA_TOL,
                  **({"mass": MASS} if align == "pvla" else {})}
        # video i with the prompt of its class: [B, T, D] vs [B, L, D]
        al = ot.alignment_loss(v_out.tokens, t_out.tokens[labels], v_out.mask,
                               t_out.mask[labels], method=align, **kw)
        loss = loss + lam * al
        logs["align"] = float(al.detach())
    return loss, logs


@dataclass(frozen=True)
class Consistency:
    """A row's request for L_CC: its weight ``alpha`` (paper: 1), ``n`` descriptions per type
    (paper: 2), and where they come from: ETL4Video files (``folder`` + ``dataset``, see
    :func:`.descriptions.load_etl4video`) or, without ``folder``, the rendered benchmark's
    generator (:func:`.descriptions.generate` with ``hallucination`` and ``seed``)."""

    alpha: float = 1.0
    n: int = 2
    hallucination: float = 0.0
    seed: int = 0
    folder: str | None = None
    dataset: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) \
                or not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if (self.folder is None) != (self.dataset is None):
            raise ValueError("folder and dataset go together (ETL4Video files), or neither "
                             "(the rendered benchmark's generator)")
        if self.folder is None:
            generate([], self.n, self.hallucination, seed=self.seed)  # checks n, hallucination

    def descriptions(self, classes: Sequence[str]) -> ClassDescriptions:
        """The descriptions of ``classes`` (in label order for ETL4Video files)."""
        if self.folder is None:
            return generate(classes, self.n, self.hallucination, seed=self.seed)
        return load_etl4video(Path(self.folder), str(self.dataset), self.n, classes)


def row_loss(row: Any, backbone: nn.Module, classes: Sequence[str],
             class_tokens: dict[str, Tensor]) -> Callable[..., tuple[Tensor, dict[str, float]]]:
    """The training loss of a table row for :func:`readpvla.train.fit`: cross-entropy, plus
    L_CC when the row asks for it (``row.consistency``, a :class:`Consistency`), its targets
    from the pretrained ``backbone`` over ``classes`` (the order of ``class_tokens``), plus
    ``row.lam`` x the row's alignment loss when it has one (``row.align``, READ-PVLA)."""
    request = getattr(row, "consistency", None)
    targets = None if request is None else consistency_targets(
        backbone, request.descriptions(classes), classes, request.alpha)
    align = getattr(row, "align", None)
    extra: dict[str, Any] = {} if align is None else {"align": align,
                                                      "lam": float(getattr(row, "lam", 0.1))}
    return partial(recognition_loss, class_tokens=class_tokens, consistency=targets, **extra)


def describe_row_loss(row: Any) -> str:
    """What a record says about a row's training loss: ``"ce"``, ``"ce + 1 * cc(n=2, h=0)"``,
    ``"ce + 0.1 * pvla"``."""
    text = "ce"
    request = getattr(row, "consistency", None)
    if request is not None:
        src = (f"{request.dataset}" if request.folder is not None
               else f"generated, h={request.hallucination:g}")
        text += f" + {request.alpha:g} * cc(n={request.n}, {src})"
    if getattr(row, "align", None) is not None:
        text += f" + {row.lam:g} * {row.align}"
    return text
