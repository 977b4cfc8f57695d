"""ROUGE through rouge-score (readpvla.metrics.rouge): hand cases and errors."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from readpvla.metrics import rouge_scores


def test_identical_and_disjoint_texts():
    same = rouge_scores(["a man slices an onion"], ["a man slices an onion"])
    assert same == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "rougeLsum": 100.0}
    apart = rouge_scores(["a man slices an onion"], ["the dog sleeps"])
    assert apart == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rougeLsum": 0.0}
    # Corpus mean: one pair at 100 and one at 0.
    both = rouge_scores(["a man slices an onion", "x y"], ["a man slices an onion", "z w"])
    assert both["rouge1"] == 50.0


def test_rouge_by_hand():
    # "the cat sat on the mat" vs "the cat lay on the mat": 6 tokens each.
    # ROUGE-1: common unigrams the x2, cat, on, mat = 5 -> P = R = F = 5/6.
    # ROUGE-2: bigrams the-cat, on-the, the-mat shared of 5 each -> 3/5.
    # ROUGE-L: LCS "the cat on the mat" = 5 -> 5/6.
    s = rouge_scores(["the cat sat on the mat"], ["the cat lay on the mat"])
    assert s["rouge1"] == pytest.approx(100 * 5 / 6)
    assert s["rouge2"] == pytest.approx(100 * 3 / 5)
    assert s["rougeL"] == pytest.approx(100 * 5 / 6)
    # Different lengths: pred "the cat" (2 tokens) vs ref "the cat sat" (3): P = 1, R = 2/3,
    # F = 2PR / (P + R) = 0.8; ROUGE-2: 1 shared bigram, P = 1, R = 1/2 -> 2/3.
    s = rouge_scores(["the cat"], ["the cat sat"])
    assert s["rouge1"] == pytest.approx(80.0) and s["rouge2"] == pytest.approx(200 / 3)


def test_stemming_is_on_by_default():
    # Porter stemming: cats -> cat, running / runs -> run.
    assert rouge_scores(["cats running"], ["cat runs"])["rouge1"] == 100.0
    assert rouge_scores(["cats running"], ["cat runs"], use_stemmer=False)["rouge1"] == 0.0


def test_matches_rouge_score_directly():
    preds = ["a woman is cutting a tomato on a board", "he explains how to tie a knot\nthen ties it",
             "dogs are playing"]
    refs = ["a woman cuts tomatoes on a cutting board", "the man shows how to tie knots\nslowly",
            "two dogs play in the park"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
                                      use_stemmer=True)
    direct = [scorer.score(r, p) for p, r in zip(preds, refs)]
    ours = rouge_scores(preds, refs)
    for k in ours:
        assert ours[k] == pytest.approx(100 * sum(d[k].fmeasure for d in direct) / 3, abs=1e-12)


def test_rouge_lsum_is_summary_level():
    # Sentences swapped: pred "c d / a b", ref "a b / c d". ROUGE-L over the flat token lists:
    # LCS of [c d a b] and [a b c d] is 2 of 4 -> 50. ROUGE-Lsum: each reference sentence finds
    # its LCS in the union over predicted sentences ("a b" -> 2, "c d" -> 2): 4 of 4 -> 100.
    s = rouge_scores(["cc dd\naa bb"], ["aa bb\ncc dd"])
    assert s["rougeL"] == pytest.approx(50.0) and s["rougeLsum"] == pytest.approx(100.0)


def test_custom_tokenizer():
    class Whitespace:
        def tokenize(self, text):
            return text.split()

    # The default tokenizer keeps only [a-z0-9]: Chinese text has no tokens -> 0. Split on
    # spaces, 2 of 3 tokens match -> 66.67.
    assert rouge_scores(["我 爱 你"], ["我 爱 他"])["rouge1"] == 0.0
    assert rouge_scores(["我 爱 你"], ["我 爱 他"], tokenizer=Whitespace())["rouge1"] == \
        pytest.approx(200 / 3)


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        rouge_scores([], [])
    with pytest.raises(TypeError, match=r"predictions\[1\] must be a str"):
        rouge_scores(["a", 3], ["a", "b"])
    with pytest.raises(TypeError, match="references must be a list of str"):
        rouge_scores(["a"], "a")
    with pytest.raises(TypeError, match="tokenize"):
        rouge_scores(["a"], ["a"], tokenizer=str.split)
