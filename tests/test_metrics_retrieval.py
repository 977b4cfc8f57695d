"""Text-video retrieval metrics (readpvla.metrics.retrieval).

Every expected number is derived by hand in the comment next to it, or compared with
``_clip4clip_*`` below: the algorithms of CLIP4Clip's ``metrics.py`` / ``main_task_retrieval.py``
(sort + diagonal + ``np.where``; the ``-inf``-padded ``[N_v, max_captions, N_v]`` reshape,
double argsort and ``torch.median``; the max over captions for video-to-text), restated here
as test oracles.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from readpvla.metrics import (
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

KEYS = ["R1", "R5", "R10", "MR", "MeanR"]


# ----------------------------------------------------------------------------- oracles

def _clip4clip_compute_metrics(x):
    """CLIP4Clip's compute_metrics: every position where the sorted row equals the true score."""
    ind = np.nonzero(np.sort(-x, axis=1) - np.diag(-x)[:, None] == 0)[1]
    return {"R1": float(np.sum(ind == 0)) * 100 / len(ind),
            "R5": float(np.sum(ind < 5)) * 100 / len(ind),
            "R10": float(np.sum(ind < 10)) * 100 / len(ind),
            "MR": float(np.median(ind) + 1), "MeanR": float(np.mean(ind) + 1)}


def _clip4clip_multi(sim, caption_video):
    """CLIP4Clip's multi-sentence evaluation on captions grouped by video (-inf padding)."""
    n_v = sim.shape[1]
    groups = [sim[caption_video == v] for v in range(n_v)]
    m = max(len(g) for g in groups)
    padded = np.stack([np.concatenate([g, np.full((m - len(g), n_v), -np.inf)]) for g in groups])
    t = torch.tensor(padded).permute(1, 0, 2)  # [m, N_v, N_v]
    second = torch.argsort(torch.argsort(t, dim=-1, descending=True), dim=-1)
    ranks = torch.diagonal(second, dim1=1, dim2=2).flatten()
    valid = ~torch.isinf(torch.diagonal(torch.tensor(padded), dim1=0, dim2=2).flatten())
    r = ranks[valid]
    t2v = {f"R{k}": float(torch.sum(r < k) * 100 / len(r)) for k in (1, 5, 10)}
    t2v["MR"] = float(torch.median(r + 1))
    t2v["MeanR"] = float(np.mean(r.numpy() + 1))
    v2t = _clip4clip_compute_metrics(torch.tensor(padded).max(dim=1).values.T.numpy())
    return {"t2v": t2v, "v2t": v2t}


def _close(got, want, rel=1e-6):
    assert list(got) == KEYS
    for k in KEYS:
        assert got[k] == pytest.approx(want[k], rel=rel, abs=1e-9), k


# ----------------------------------------------------------------------------- closed forms

def test_perfect_diagonal():
    sim = np.eye(12) + 0.01 * np.arange(12)[None, :]  # true item strictly best in every row/col
    res = evaluate_retrieval(sim)
    for d in ("t2v", "v2t"):
        assert res[d] == {"R1": 100.0, "R5": 100.0, "R10": 100.0, "MR": 1.0, "MeanR": 1.0}


def test_reversed_ranking_true_item_last():
    n = 12
    i, j = np.indices((n, n))
    sim = ((j - i) % n).astype(float)  # row i: 0 at j = i, distinct positives elsewhere
    res = text_to_video(sim)  # every rank is n - 1 = 11
    assert res == {"R1": 0.0, "R5": 0.0, "R10": 0.0, "MR": 12.0, "MeanR": 12.0}
    n = 8  # rank 7 < 10, >= 5
    i, j = np.indices((n, n))
    res = retrieval_metrics(((j - i) % n).astype(float))
    assert res == {"R1": 0.0, "R5": 0.0, "R10": 100.0, "MR": 8.0, "MeanR": 8.0}


def test_hand_computed_3x3():
    sim = np.array([[0.9, 0.1, 0.3],
                    [0.8, 0.2, 0.5],
                    [0.7, 0.6, 0.4]])
    res = evaluate_retrieval(sim)
    # t2v ranks: row0 0.9 -> 0; row1 0.2 < 0.8, 0.5 -> 2; row2 0.4 < 0.7, 0.6 -> 2
    _close(res["t2v"], {"R1": 100 / 3, "R5": 100, "R10": 100, "MR": 3, "MeanR": 4 / 3 + 1})
    # v2t (columns): col0 0.9 -> 0; col1 0.2 < 0.6 -> 1; col2 0.4 < 0.5 -> 1
    _close(res["v2t"], {"R1": 100 / 3, "R5": 100, "R10": 100, "MR": 2, "MeanR": 2 / 3 + 1})
    np.testing.assert_array_equal(true_ranks(sim), [0, 2, 2])
    np.testing.assert_array_equal(true_ranks(sim.T), [0, 1, 1])


def test_hand_computed_4x4_even_median():
    sim = np.array([[4., 3., 2., 1.],    # true 4 -> rank 0
                    [4., 1., 3., 2.],    # true 1 -> rank 3
                    [1., 4., 3., 2.],    # true 3 -> rank 1
                    [3., 4., 1., 2.]])   # true 2 -> rank 2
    # ranks [0, 3, 1, 2]: np.median = 1.5 -> MR 2.5; mean 1.5 -> MeanR 2.5; R@1 = 25
    assert retrieval_metrics(sim) == {"R1": 25.0, "R5": 100.0, "R10": 100.0, "MR": 2.5,
                                      "MeanR": 2.5}
    assert rank_metrics([0, 3, 1, 2], multi_sentence=True)["MR"] == 2.0  # torch.median: 1 -> 2


def test_ties_constant_matrix():
    sim = np.ones((4, 4))
    # clip4clip: every row contributes the tied positions 0, 1, 2, 3 (16 ranks):
    # R@1 = 4/16 = 25 %, median(0..3 each 4 times) = 1.5 -> MR 2.5, mean 1.5 -> MeanR 2.5
    want = {"R1": 25.0, "R5": 100.0, "R10": 100.0, "MR": 2.5, "MeanR": 2.5}
    assert retrieval_metrics(sim) == want
    assert retrieval_metrics(sim) == _clip4clip_compute_metrics(sim)
    assert evaluate_retrieval(sim) == {"t2v": want, "v2t": want}
    assert len(true_ranks(sim)) == 16
    assert retrieval_metrics(sim, ties="optimistic") == {"R1": 100.0, "R5": 100.0, "R10": 100.0,
                                                         "MR": 1.0, "MeanR": 1.0}
    assert retrieval_metrics(sim, ties="pessimistic") == {"R1": 0.0, "R5": 100.0, "R10": 100.0,
                                                          "MR": 4.0, "MeanR": 4.0}


def test_partial_tie_ranks():
    sim = np.array([[0.5, 0.9, 0.5, 0.5],  # true 0.5: 1 above, tied with 2 others
                    [0.1, 0.2, 0.0, 0.0],  # true 0.2: rank 0, no tie
                    [0.0, 0.0, 0.3, 0.0],
                    [0.0, 0.0, 0.0, 0.4]])
    np.testing.assert_array_equal(true_ranks(sim), [1, 2, 3, 0, 0, 0])  # row 0: positions 1..3
    np.testing.assert_array_equal(true_ranks(sim, ties="optimistic"), [1, 0, 0, 0])
    np.testing.assert_array_equal(true_ranks(sim, ties="pessimistic"), [3, 0, 0, 0])


def test_matches_clip4clip_compute_metrics_with_ties():
    rng = np.random.default_rng(0)
    for n in (3, 7, 30):
        sim = rng.integers(0, 4, size=(n, n)).astype(float)  # many ties
        for x in (sim, sim.T):
            assert retrieval_metrics(x) == _clip4clip_compute_metrics(x)
        sim = rng.normal(size=(n, n))
        res = evaluate_retrieval(sim)
        assert res["t2v"] == _clip4clip_compute_metrics(sim)
        assert res["v2t"] == _clip4clip_compute_metrics(sim.T)


def test_torch_input_and_target():
    sim = np.array([[0.9, 0.1, 0.3], [0.8, 0.2, 0.5], [0.7, 0.6, 0.4]])
    assert evaluate_retrieval(torch.tensor(sim, dtype=torch.float64)) == evaluate_retrieval(sim)
    perm = np.array([2, 0, 1])  # text i's video is column perm[i]
    shuffled = np.empty_like(sim)
    shuffled[:, perm] = sim
    assert retrieval_metrics(shuffled, perm) == retrieval_metrics(sim)
    assert evaluate_retrieval(shuffled, perm) == evaluate_retrieval(sim)  # one-to-one protocol


# ----------------------------------------------------------------------------- several captions

# 3 videos, 6 captions: v0 <- c0, c1; v1 <- c2, c5; v2 <- c3, c4
MULTI_SIM = np.array([[0.9, 0.75, 0.2],   # c0 (v0): rank 0
                      [0.3, 0.72, 0.4],   # c1 (v0): 0.3 < 0.72, 0.4 -> rank 2
                      [0.2, 0.7, 0.1],    # c2 (v1): rank 0
                      [0.6, 0.1, 0.5],    # c3 (v2): 0.5 < 0.6 -> rank 1
                      [0.1, 0.2, 0.8],    # c4 (v2): rank 0
                      [0.85, 0.3, 0.0]])  # c5 (v1): 0.3 < 0.85 -> rank 1
MULTI_CV = np.array([0, 0, 1, 2, 2, 1])


def test_multi_caption_hand_computed():
    res = evaluate_retrieval(MULTI_SIM, MULTI_CV)
    # t2v ranks [0, 2, 0, 1, 0, 1] -> sorted [0, 0, 0, 1, 1, 2]: R@1 = 3/6; lower median 0 -> MR 1
    # (np.median would give 1.5); mean 4/6 -> MeanR 5/3
    _close(res["t2v"], {"R1": 50, "R5": 100, "R10": 100, "MR": 1, "MeanR": 5 / 3})
    # v2t, best caption per video: M[v, g] = max over captions of g of S[c, v]
    #   v0: g0 max(.9,.3)=.9, g1 max(.2,.85)=.85, g2 max(.6,.1)=.6   -> rank 0
    #   v1: g0 max(.75,.72)=.75, g1 max(.7,.3)=.7, g2 max(.1,.2)=.2 -> rank 1 (one other video
    #       above, though two of its captions are: best-caption grouping, not caption count)
    #   v2: g0 .4, g1 .1, g2 .8                                      -> rank 0
    _close(res["v2t"], {"R1": 200 / 3, "R5": 100, "R10": 100, "MR": 1, "MeanR": 4 / 3})
    assert res == _clip4clip_multi(MULTI_SIM, MULTI_CV)


def test_multi_caption_order_invariant_and_matches_clip4clip():
    order = np.array([5, 3, 0, 4, 1, 2])
    assert evaluate_retrieval(MULTI_SIM[order], MULTI_CV[order]) == \
        evaluate_retrieval(MULTI_SIM, MULTI_CV)
    rng = np.random.default_rng(1)
    for n_v, n_t in ((5, 13), (8, 20)):
        cv = np.concatenate([np.arange(n_v), rng.integers(0, n_v, n_t - n_v)])
        sim = rng.normal(size=(n_t, n_v))  # no ties: CLIP4Clip's argsort order is then defined
        want = _clip4clip_multi(sim, cv)
        got = evaluate_retrieval(sim, cv)
        assert got == want  # the same floats (t2v R@K divided in float32, as CLIP4Clip)


def test_multi_caption_ties():
    sim = np.ones((4, 2))
    cv = np.array([0, 1, 0, 1])
    # t2v: each caption ties with the other video -> optimistic rank 0 (pessimistic 1)
    assert text_to_video(sim, cv)["R1"] == 100.0
    assert text_to_video(sim, cv, ties="pessimistic")["R1"] == 0.0
    # v2t: M = ones(2, 2) -> clip4clip positions 0, 1 for both videos: R@1 50, MR 1.5
    assert video_to_text(sim, cv) == {"R1": 50.0, "R5": 100.0, "R10": 100.0, "MR": 1.5,
                                      "MeanR": 1.5}


# ----------------------------------------------------------------------------- DSL

def test_dual_softmax_formula():
    sim = np.array([[1.0, 0.0], [0.9, 0.8]])
    e = np.e
    want = np.array([[1.0 * e / (e + 1), 0.0],
                     [0.9 / (e + 1), 0.8 * e ** 8 / (1 + e ** 8)]])  # T = 10, softmax over rows
    np.testing.assert_allclose(dual_softmax(sim, temperature=10), want, rtol=1e-12)
    x = np.random.default_rng(2).normal(size=(5, 4))
    sm = np.exp(100 * x) / np.exp(100 * x).sum(axis=0, keepdims=True)
    np.testing.assert_allclose(dual_softmax(x), x * sm, rtol=1e-10)  # default T = 100


def test_dsl_changes_ranking():
    sim = np.array([[1.0, 0.0], [0.9, 0.8]])
    # raw t2v: text 1 prefers video 0 (0.9 > 0.8) -> ranks [0, 1], R@1 50
    assert text_to_video(sim)["R1"] == 50.0
    # DSL, T = 10: text 1 -> [0.9/(1+e) = 0.242, 0.8 e^8/(1+e^8) = 0.7997] -> video 1, R@1 100
    assert text_to_video(sim, dsl=True, temperature=10)["R1"] == 100.0
    # v2t DSL on S^T, softmax over videos: video 0 -> [e^10/(e^10+1) = 1.000,
    # 0.9 e/(e+1) = 0.658], rank 0; video 1 -> [0, 0.8/(e+1) = 0.215], rank 0
    assert video_to_text(sim, dsl=True, temperature=10)["R1"] == 100.0
    res = evaluate_retrieval(sim, dsl=True, temperature=10)
    assert res["t2v"]["R1"] == res["v2t"]["R1"] == 100.0


def test_dsl_multi_caption_applies_before_best_caption():
    got = video_to_text(MULTI_SIM, MULTI_CV, dsl=True)
    st = dual_softmax(MULTI_SIM.T)  # [N_v, N_t], softmax over videos
    best = np.stack([st[:, MULTI_CV == g].max(axis=1) for g in range(3)], axis=1)
    assert got == retrieval_metrics(best)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("sim, match", [
    (np.ones(3), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
    (np.ones((0, 3)), "empty"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), r"sim\[0, 1\] = nan is NaN or infinite"),
    (np.array([[1.0, 0.0], [np.inf, 1.0]]), "NaN or infinite"),
    (np.array([["a", "b"], ["c", "d"]]), "numbers"),
    (np.ones((2, 3)), "must be square"),
])
def test_bad_sim(sim, match):
    with pytest.raises(ValueError, match=match):
        evaluate_retrieval(sim)


@pytest.mark.parametrize("cv, match", [
    ([0, 1, 1], "has 3 entries, expected 4"),
    ([0, 1, 2, 1], r"caption_video\[2\] = 2 is out of range \[0, 2\)"),
    ([0, -1, 1, 1], "out of range"),
    ([0, 0, 0, 0], r"1 video\(s\) have no caption"),
    ([0.5, 1, 1, 0], "integers"),
    ([[0, 1], [1, 0]], "1-D"),
])
def test_bad_caption_video(cv, match):
    with pytest.raises(ValueError, match=match):
        evaluate_retrieval(np.ones((4, 2)), cv)


def test_bad_options():
    with pytest.raises(ValueError, match="ties must be one of"):
        evaluate_retrieval(np.eye(2), ties="average")
    for t in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            evaluate_retrieval(np.eye(2), dsl=True, temperature=t)
    with pytest.raises(ValueError, match="more rows than columns"):
        true_ranks(np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        rank_metrics([])


# ----------------------------------------------------------------------------- files and CLI

def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = retrieval_pred_lines(MULTI_SIM, MULTI_CV, video_ids=["a", "b", "c"])
    assert lines[1] == {"text_id": 1, "video_id": "a", "scores": {"a": 0.3, "b": 0.72, "c": 0.4}}
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    sim, cv, tids, vids = load_retrieval_jsonl(path)
    np.testing.assert_array_equal(sim, MULTI_SIM)
    np.testing.assert_array_equal(cv, MULTI_CV)
    assert tids == list(range(6)) and vids == ["a", "b", "c"]


@pytest.mark.parametrize("lines, match", [
    (['{"text_id": 0, "video_id": "a", "scores": {"a": 1}', ""], r"p.jsonl:1: malformed JSON"),
    (['{"text_id": 0, "scores": {"a": 1}}'], r"p.jsonl:1: missing field 'video_id'"),
    (['{"text_id": 0, "video_id": "a", "scores": {"a": 1, "b": 0}}',
      '{"text_id": 0, "video_id": "b", "scores": {"a": 0, "b": 1}}'],
     "p.jsonl:2: duplicate text_id"),
    (['{"text_id": 0, "video_id": "a", "scores": {"a": 1, "b": 0}}',
      '{"text_id": 1, "video_id": "b", "scores": {"a": 0, "c": 1}}'], "p.jsonl:2: scores cover"),
    (['{"text_id": 0, "video_id": "z", "scores": {"a": 1}}'], "not among the scored videos"),
    (['{"text_id": 0, "video_id": "a", "scores": {"a": NaN}}'], "not a finite number"),
    (['{"text_id": 0, "video_id": "a", "scores": {"a": 1, "b": 0}}'], "no line's video_id"),
    ([""], "no prediction lines"),
])
def test_bad_jsonl(tmp_path, lines, match):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match):
        load_retrieval_jsonl(path)


def test_cli_sim_and_captions(tmp_path, capsys):
    np.save(tmp_path / "s.npy", MULTI_SIM)
    (tmp_path / "c.json").write_text(json.dumps(MULTI_CV.tolist()))
    out = tmp_path / "m.json"
    argv = ["--sim", str(tmp_path / "s.npy"), "--captions", str(tmp_path / "c.json")]
    assert retrieval_main(argv + ["--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == evaluate_retrieval(MULTI_SIM, MULTI_CV)
    assert retrieval_main(argv + ["--dsl", "--temperature", "10"]) == 0
    assert json.loads(capsys.readouterr().out) == \
        evaluate_retrieval(MULTI_SIM, MULTI_CV, dsl=True, temperature=10)


def test_cli_pred_jsonl(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    lines = retrieval_pred_lines(MULTI_SIM, MULTI_CV)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert retrieval_main(["--pred", str(path), "--ties", "optimistic"]) == 0
    assert json.loads(capsys.readouterr().out) == \
        evaluate_retrieval(MULTI_SIM, MULTI_CV, ties="optimistic")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("readpvla eval-retrieval: error:"), err
    return err


def test_cli_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    bad.write_text("not an array\n")
    assert retrieval_main(["--sim", str(bad)]) == 1
    assert "not a NumPy .npy file" in _one_error_line(capsys)
    assert retrieval_main(["--sim", str(tmp_path / "missing.npy")]) == 1
    assert "No such file" in _one_error_line(capsys)
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    assert retrieval_main(["--sim", str(tmp_path / "nan.npy")]) == 1
    assert "NaN or infinite" in _one_error_line(capsys)
    np.save(tmp_path / "s.npy", np.ones((4, 2)))
    (tmp_path / "c.json").write_text("[0, 0, 0, 0]")
    assert retrieval_main(["--sim", str(tmp_path / "s.npy"), "--captions",
                           str(tmp_path / "c.json")]) == 1
    assert "have no caption" in _one_error_line(capsys)
    (tmp_path / "c.json").write_text('{"0": 1}')
    assert retrieval_main(["--sim", str(tmp_path / "s.npy"), "--captions",
                           str(tmp_path / "c.json")]) == 1
    assert "JSON list of video indices" in _one_error_line(capsys)


@pytest.mark.parametrize("argv", [
    [],                                                # neither --sim nor --pred
    ["--sim", "s.npy", "--pred", "p.jsonl"],           # both
    ["--pred", "p.jsonl", "--captions", "c.json"],     # --captions without --sim
    ["--sim", "s.npy", "--temperature", "10"],         # --temperature without --dsl
    ["--sim", "s.npy", "--dsl", "--temperature", "0"],
    ["--sim", "s.npy", "--ties", "average"],
])
def test_cli_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as e:
        retrieval_main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("readpvla eval-retrieval: error:"), err
