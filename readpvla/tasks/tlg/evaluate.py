"""TLG predictions and evaluation: QVHighlights prediction lines, the standard metrics, and a
predictor that grounds one query in one video (in the spirit of lighthouse).

The table's number is **MR-full-mAP** (QVHighlights moment retrieval mAP averaged over IoU
0.5:0.05:0.95); ``HL-min-VeryGood-mAP`` and ``MR-full-R1@0.5`` are stored beside it, and a run's
record keeps each of them per test query (``per_item``, ``item_ids``) for paired intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from readpvla import peft
from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import TLGDataset

from .data import batches
from .loss import forward_batch

__all__ = ["EXTRA_METRICS", "PLAIN_METRIC", "TABLE_METRIC", "TEMPORAL_KINDS", "TEMPORAL_METRIC",
           "Predictor", "evaluate", "predict"]

TABLE_METRIC = "MR-full-mAP"
EXTRA_METRICS = ("HL-min-VeryGood-mAP", "MR-full-R1@0.5")
#: the table metric on the queries that need order ("after" / "before" in the synthetic
#: benchmark's latent script, the ``kind`` field :func:`readpvla.data.load_tlg` adds), and on
#: the plain ones: Table 1's "Temporal" column (issue 15's slices)
TEMPORAL_METRIC = f"{TABLE_METRIC} (temporal)"
PLAIN_METRIC = f"{TABLE_METRIC} (plain)"
#: the ``kind`` values that make a query temporal
TEMPORAL_KINDS = ("after", "before")


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, dataset: TLGDataset, batch_size: int = 32, k: int = 10
            ) -> list[dict[str, Any]]:
    """Prediction lines in the QVHighlights format, one per query of ``dataset`` (file order).

    Each line: ``{qid, query, vid, pred_relevant_windows: [[st, ed, score], ...] (<= k, best
    first), pred_saliency_scores: [one per 2 s clip]}`` -- what
    :func:`readpvla.metrics.evaluate_tlg` reads. The model runs in eval mode (restored after).
    """
    from readpvla.metrics.tlg import windows_to_pred_line

    was_training = model.training
    model.eval()
    dev = _device_of(model)
    lines = []
    try:
        for batch in batches(dataset, batch_size):
            batch = batch.to(dev)
            out = forward_batch(model, batch)
            for i, (wins, sal) in enumerate(model.decode(out, batch.duration, batch.clip_len, k=k)):
                lines.append(windows_to_pred_line(batch.qid[i], batch.query[i], batch.vid[i],
                                                  wins, sal, k=k))
    finally:
        model.train(was_training)
    return lines


def evaluate(model: nn.Module, dataset: TLGDataset, batch_size: int = 32,
             per_item: bool = False) -> dict[str, Any]:
    """QVHighlights metrics (percent) of ``model`` on a labelled ``dataset``:
    :func:`predict` then :func:`readpvla.metrics.evaluate_tlg` against the annotation lines.

    With ``per_item``, also ``"per_item": {metric: one score per query}`` for
    :data:`TABLE_METRIC` and :data:`EXTRA_METRICS` (:func:`readpvla.metrics.per_query_tlg`:
    ``MR-full-mAP`` per query = its AP averaged over the IoU thresholds; the table metric is
    exactly the mean of these values, before rounding to 2 decimals) and ``"item_ids"``: the
    queries' qids in the same (file) order, for paired tests and bootstrap intervals
    (:mod:`readpvla.experiment.intervals`).

    When every query carries a ``kind`` (the synthetic benchmark's latent script), also
    :data:`TEMPORAL_METRIC` and :data:`PLAIN_METRIC`: the table metric on the queries whose kind
    is in :data:`TEMPORAL_KINDS` and on the others (``evaluate_tlg(..., group_by="kind")``; a
    slice without queries is left out), and with ``per_item`` their per-query scores (the
    slice's queries in file order)."""
    from readpvla.metrics import evaluate_tlg, per_query_tlg

    if not dataset.has_labels:
        raise ValueError(f"split {dataset.split!r} has no labels to evaluate against")
    preds, gts = predict(model, dataset, batch_size), list(dataset.records)
    sliced = bool(gts) and all("kind" in g for g in gts)
    groups = {k: "temporal" for k in TEMPORAL_KINDS}
    if sliced:
        kinds = {str(g["kind"]) for g in gts}
        groups.update({k: "plain" for k in kinds if k not in TEMPORAL_KINDS})
        by = evaluate_tlg(preds, gts, group_by="kind", group_map=groups)
        out: dict[str, Any] = by["all"]
        for name, metric in (("temporal", TEMPORAL_METRIC), ("plain", PLAIN_METRIC)):
            if name in by and TABLE_METRIC in by[name]:
                out[metric] = by[name][TABLE_METRIC]
    else:
        out = evaluate_tlg(preds, gts)
    if per_item:
        scores = per_query_tlg(preds, gts)
        out["per_item"] = {k: scores[k] for k in (TABLE_METRIC, *EXTRA_METRICS) if k in scores}
        out["item_ids"] = scores["qid"]
        if sliced:
            kind_of = {g["qid"]: groups.get(str(g["kind"]), "plain") for g in gts}
            for name, metric in (("temporal", TEMPORAL_METRIC), ("plain", PLAIN_METRIC)):
                if metric in out:
                    out["per_item"][metric] = [v for q, v in zip(scores["qid"],
                                                                 scores[TABLE_METRIC])
                                               if kind_of[q] == name]
    return out


@dataclass
class Predictor:
    """Ground a query in a video: ranked windows and per-clip saliency (in the spirit of lighthouse).

    ::

        p = Predictor.from_checkpoint("crossmodal", adapter="runs/my_read_adapter")
        out = p.predict(video_feats, "A dog fetches a frisbee.")
        out["windows"]    # [[st, ed, score], ...] seconds, best first (<= k)
        out["saliency"]   # one score in [0, 1] per clip

    Attributes:
        model: a TLG backbone (with or without an adapter), used in eval mode.
        clip_len: seconds per clip feature.
        k: windows returned.
    """

    model: nn.Module = field(repr=False)
    clip_len: float = 2.0
    k: int = 10
    device: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.device is not None:
            self.model.to(self.device)
        self.model.eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path = "crossmodal", adapter: str | Path | None = None,
                        device: str | None = None, **kw: Any) -> Predictor:
        """Load a backbone checkpoint (a directory, or ``"crossmodal"`` / ``"momentdetr"`` for the
        shipped ones) and, optionally, an adapter saved with :func:`readpvla.peft.save_adapter`."""
        from .pretrain import BACKBONES, default_checkpoint

        if isinstance(path, str) and path in BACKBONES:
            path = default_checkpoint(path)
        model = load_backbone(path)
        if adapter is not None:
            model = peft.load_adapter(model, adapter)
        return cls(model, device=device, **kw)

    @torch.no_grad()
    def predict(self, video_feats: np.ndarray | Tensor, query: str | np.ndarray | Tensor,
                duration: float | None = None) -> dict[str, Any]:
        """Windows and saliency for one (video, query) pair.

        Args:
            video_feats: ``[Nv, d_video]`` clip features (one row per ``clip_len`` seconds).
            query: the query text (encoded with the offline all-MiniLM-L6-v2 of
                :mod:`readpvla.backbones.text_encoder`), or its token features ``[Nl, d_text]``.
            duration: video length in seconds (default ``Nv * clip_len``).

        Returns:
            ``{"windows": [[st, ed, score], ...], "saliency": [Nv floats]}``.
        """
        video = torch.as_tensor(np.asarray(video_feats) if not isinstance(video_feats, Tensor)
                                else video_feats, dtype=torch.float32)
        if video.dim() != 2 or video.shape[0] == 0:
            raise ValueError(f"video_feats must be [n_clips, d_video], got {tuple(video.shape)}")
        if isinstance(query, str):
            if not query.strip():
                raise ValueError("query is empty")
            from readpvla.backbones.text_encoder import encode_tokens

            text = torch.as_tensor(encode_tokens([query])[0])
        else:
            text = torch.as_tensor(np.asarray(query) if not isinstance(query, Tensor) else query,
                                   dtype=torch.float32)
        if text.dim() != 2 or text.shape[0] == 0:
            raise ValueError(f"query features must be [n_tokens, d_text], got {tuple(text.shape)}")
        dur = float(duration) if duration is not None else video.shape[0] * self.clip_len
        if not dur > 0:
            raise ValueError(f"duration must be > 0, got {duration!r}")
        dev = _device_of(self.model)
        out = self.model(video[None].to(dev), None, text[None].to(dev), None)
        wins, sal = self.model.decode(out, torch.tensor([dur]), self.clip_len, k=self.k)[0]
        return {"windows": [[round(float(a), 3), round(float(b), 3), float(s)] for a, b, s in wins],
                "saliency": [float(x) for x in sal]}


