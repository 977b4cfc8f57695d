"""Task metrics: QVHighlights moment retrieval / highlight detection (the standard evaluation's
numbers) and ROUGE for video-language summarisation.

>>> from readpvla.metrics import evaluate_tlg_files
>>> evaluate_tlg_files("preds.jsonl", "gt.jsonl")          # doctest: +SKIP
{'MR-full-R1@0.5': ..., ..., 'HL-min-VeryGood-Hit1': ...}
"""

from readpvla.metrics.highlight import SALIENCY_LEVELS, eval_highlight, saliency_ap
from readpvla.metrics.moment import (
    IOU_THRESHOLDS,
    LENGTH_BUCKETS,
    eval_moment_retrieval,
    moment_ap,
    temporal_iou,
    voc_ap,
)
from readpvla.metrics.rouge import rouge_scores
from readpvla.metrics.tlg import (
    BRIEF_KEYS,
    evaluate_tlg,
    evaluate_tlg_files,
    load_jsonl,
    save_jsonl,
    tlg_main,
    top_k_windows,
    windows_to_pred_line,
)

__all__ = [
    "evaluate_tlg", "evaluate_tlg_files", "load_jsonl", "save_jsonl", "tlg_main",
    "windows_to_pred_line", "top_k_windows", "BRIEF_KEYS",
    "eval_moment_retrieval", "moment_ap", "temporal_iou", "voc_ap", "IOU_THRESHOLDS",
    "LENGTH_BUCKETS",
    "eval_highlight", "saliency_ap", "SALIENCY_LEVELS",
    "rouge_scores",
]
