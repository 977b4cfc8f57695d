"""Task metrics: QVHighlights moment retrieval / highlight detection (the standard evaluation's
numbers), ROUGE for video-language summarisation, text-video retrieval R@K / MdR / MnR (CLIP4Clip's
numbers) and action recognition accuracy / base-to-novel HM.

>>> from readpvla.metrics import evaluate_tlg_files
>>> evaluate_tlg_files("preds.jsonl", "gt.jsonl")          # doctest: +SKIP
{'MR-full-R1@0.5': ..., ..., 'HL-min-VeryGood-Hit1': ...}
>>> evaluate_tlg_files("preds.jsonl", "gt.jsonl", group_by="kind")  # doctest: +SKIP
{'all': {...}, 'after': {...}, 'before': {...}, 'plain': {...}}
>>> from readpvla.metrics import evaluate_retrieval
>>> evaluate_retrieval(sim)                                   # doctest: +SKIP
{'t2v': {'R1': ..., 'R5': ..., 'R10': ..., 'MR': ..., 'MeanR': ...}, 'v2t': {...}}
"""

from readpvla.metrics.highlight import (
    SALIENCY_LEVELS,
    eval_highlight,
    highlight_scores_per_query,
    saliency_ap,
)
from readpvla.metrics.moment import (
    IOU_THRESHOLDS,
    LENGTH_BUCKETS,
    eval_moment_retrieval,
    moment_ap,
    moment_scores_per_query,
    temporal_iou,
    voc_ap,
)
from readpvla.metrics.recognition import (
    accuracy,
    base_novel_accuracy,
    harmonic_mean,
    label_ranks,
    mean_class_accuracy,
    per_class_accuracy,
)
from readpvla.metrics.retrieval import (
    dual_softmax,
    evaluate_retrieval,
    load_retrieval_jsonl,
    rank_metrics,
    retrieval_main,
    retrieval_metrics,
    retrieval_pred_lines,
    text_to_video,
    true_ranks,
    video_to_text,
)
from readpvla.metrics.rouge import rouge_scores
from readpvla.metrics.tlg import (
    BRIEF_KEYS,
    evaluate_tlg,
    evaluate_tlg_files,
    load_jsonl,
    per_query_tlg,
    save_jsonl,
    tlg_main,
    top_k_windows,
    windows_to_pred_line,
)

__all__ = [
    "evaluate_tlg", "evaluate_tlg_files", "load_jsonl", "save_jsonl", "tlg_main",
    "windows_to_pred_line", "top_k_windows", "BRIEF_KEYS", "per_query_tlg",
    "eval_moment_retrieval", "moment_ap", "temporal_iou", "voc_ap", "IOU_THRESHOLDS",
    "LENGTH_BUCKETS", "moment_scores_per_query",
    "eval_highlight", "saliency_ap", "SALIENCY_LEVELS", "highlight_scores_per_query",
    "rouge_scores",
    "evaluate_retrieval", "text_to_video", "video_to_text", "retrieval_metrics", "rank_metrics",
    "true_ranks", "dual_softmax", "load_retrieval_jsonl", "retrieval_pred_lines", "retrieval_main",
    "accuracy", "per_class_accuracy", "mean_class_accuracy", "label_ranks", "harmonic_mean",
    "base_novel_accuracy",
]
