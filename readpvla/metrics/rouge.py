"""ROUGE-1/2/L for video-language summarisation (How2), through Google's ``rouge-score``.

Same settings as the summarisation papers that report ROUGE with ``rouge-score`` (and as Hugging
Face ``evaluate``'s "rouge"): Porter stemming on, the package's default tokenizer (lower-cases,
keeps ``[a-z0-9]`` tokens), F-measure, averaged over the corpus (no bootstrap aggregation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_scores(predictions: Sequence[str], references: Sequence[str],
                 tokenizer: Any = None, use_stemmer: bool = True) -> dict[str, float]:
    r"""Corpus-mean ROUGE F-measures, in percent.

    For each pair, with :math:`\mathrm{match}` the clipped overlap of n-grams (ROUGE-n) or the
    longest common subsequence (ROUGE-L) of prediction ``p`` and reference ``r``:

    .. math:: P = \frac{\mathrm{match}}{|p|}, \quad R = \frac{\mathrm{match}}{|r|}, \quad
              F = \frac{2PR}{P + R}\ (0 \text{ if } P + R = 0)

    and each score is :math:`100 \cdot \frac{1}{N}\sum_i F_i`. ``rougeLsum`` is the
    summary-level LCS over newline-separated sentences (equal to ``rougeL`` for one-line texts;
    put one sentence per line to use it).

    Args:
        predictions: ``N`` generated texts.
        references: ``N`` reference texts, aligned with ``predictions``.
        tokenizer: optional object with ``tokenize(text) -> list[str]`` replacing the default
            tokenizer (``use_stemmer`` is then ignored by ``rouge-score``). The default drops
            every character outside ``[a-z0-9]``, so non-Latin text needs a tokenizer.
        use_stemmer: Porter stemming (on, as in the summarisation papers).

    Returns:
        ``{"rouge1", "rouge2", "rougeL", "rougeLsum"}`` -> mean F-measure in percent.

    Raises:
        TypeError: inputs are not sequences of ``str``, or ``tokenizer`` has no ``tokenize``.
        ValueError: empty inputs or different lengths.

    References:
        Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL Workshop 2004.
    """
    for name, texts in (("predictions", predictions), ("references", references)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length: "
                         f"{len(predictions)} vs {len(references)}")
    if len(predictions) == 0:
        raise ValueError("predictions and references are empty")
    if tokenizer is not None and not callable(getattr(tokenizer, "tokenize", None)):
        raise TypeError("tokenizer must have a tokenize(text) -> list[str] method")

    from rouge_score import rouge_scorer  # imported here: it pulls in nltk

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer,
                                      tokenizer=tokenizer)
    totals: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge-score's order: (target, prediction)
        for k in ROUGE_TYPES:
            totals[k].append(scores[k].fmeasure)
    return {k: 100.0 * math.fsum(v) / len(v) for k, v in totals.items()}
