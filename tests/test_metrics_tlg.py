"""QVHighlights moment retrieval / highlight detection metrics (readpvla.metrics.tlg).

Every expected number below is derived by hand in the comment next to it, or (real data) is the
output of Moment-DETR's own ``standalone_eval/eval.py`` on the same two files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from readpvla.metrics import (
    BRIEF_KEYS,
    evaluate_tlg,
    evaluate_tlg_files,
    load_jsonl,
    moment_ap,
    saliency_ap,
    save_jsonl,
    tlg_main,
    top_k_windows,
    voc_ap,
    windows_to_pred_line,
)

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "qvhighlights"
MR_KEYS = [k for k in BRIEF_KEYS if k.startswith("MR-")]
HL_KEYS = [k for k in BRIEF_KEYS if k.startswith("HL-")]


def gt(qid, windows=None, duration=None, ids=None, scores=None):
    """A GT line with only the fields given."""
    line = {"qid": qid, "query": f"q{qid}", "vid": f"v{qid}"}
    if windows is not None:
        line["relevant_windows"] = windows
    if duration is not None:
        line.update(duration=duration, relevant_clip_ids=ids, saliency_scores=scores)
    return line


def pred(qid, windows=None, saliency=None):
    line = {"qid": qid, "query": f"q{qid}", "vid": f"v{qid}"}
    if windows is not None:
        line["pred_relevant_windows"] = windows
    if saliency is not None:
        line["pred_saliency_scores"] = saliency
    return line


# ----------------------------------------------------------------------------- real data

# Moment-DETR's standalone_eval/eval.py (commit 2fa9e32, run with numpy 2.4 / scikit-learn 1.9)
# on sample_val_preds.jsonl vs highlight_val_release.jsonl. The MR R1 and HL VeryGood numbers are
# also the Moment-DETR paper's QVHighlights val numbers (Lei et al. 2021).
STANDARD_BRIEF = {
    "MR-full-R1@0.5": 53.94, "MR-full-R1@0.7": 34.84, "MR-full-mAP": 32.2,
    "MR-full-mAP@0.5": 54.96, "MR-full-mAP@0.75": 31.01, "MR-long-mAP": 41.11,
    "MR-middle-mAP": 32.3, "MR-short-mAP": 3.28,
    "HL-min-Fair-mAP": 67.77, "HL-min-Fair-Hit1": 66.45, "HL-min-Good-mAP": 58.09,
    "HL-min-Good-Hit1": 64.45, "HL-min-VeryGood-mAP": 35.65, "HL-min-VeryGood-Hit1": 55.55,
}
STANDARD_FULL_MAP = {  # same run, "full" -> "MR-mAP"
    "0.5": 54.96, "0.55": 49.88, "0.6": 46.62, "0.65": 40.2, "0.7": 35.49, "0.75": 31.01,
    "0.8": 24.79, "0.85": 18.72, "0.9": 13.21, "0.95": 7.16, "average": 32.2,
}


@pytest.fixture(scope="module")
def real_result():
    preds, gts = REF / "sample_val_preds.jsonl", REF / "highlight_val_release.jsonl"
    if not (preds.exists() and gts.exists()):
        pytest.skip(f"real QVHighlights reference files not found under {REF}")
    return evaluate_tlg_files(preds, gts, detailed=True)


def test_real_qvhighlights_val_equals_standard_evaluation(real_result):
    brief = real_result["brief"]
    print("\nQVHighlights val, Moment-DETR predictions:", json.dumps(brief, indent=1))
    assert list(brief) == list(BRIEF_KEYS)
    for k, v in brief.items():
        assert math.isfinite(v) and 0 <= v <= 100, k
    # The Moment-DETR paper's val range: mAP ~30-40, R1@0.5 ~50-60, HL VeryGood mAP ~35-40.
    assert 30 <= brief["MR-full-mAP"] <= 40
    assert 50 <= brief["MR-full-R1@0.5"] <= 60
    assert 35 <= brief["HL-min-VeryGood-mAP"] <= 40
    assert brief == STANDARD_BRIEF
    assert real_result["full"]["MR-mAP"] == STANDARD_FULL_MAP
    # The standard prints these bucket sizes: short 429, middle 957, long 574 of 1550.
    counts = {b: real_result[b]["num_queries"] for b in ("short", "middle", "long", "full")}
    assert counts == {"short": 429, "middle": 957, "long": 574, "full": 1550}


# ----------------------------------------------------------------------------- MR by hand

def test_perfect_prediction_scores_100_everywhere():
    # Each query's GT windows fall in one length bucket (see the bucket test for why);
    # annotators agree; predicted saliency = the GT score, so positives rank first at every
    # level and the top clip scores 4.
    def dense(n, ids, s):
        out = [0.0] * n
        for i, v in zip(ids, s):
            out[i] = float(v)
        return out

    cases = [  # qid, windows, duration, relevant clip ids, per-clip score
        (1, [[0, 10]], 20, [0, 1, 2, 3, 4], [4, 3, 2, 2, 1]),            # short (10 s)
        (2, [[10, 40]], 60, list(range(5, 20)), [4] + [3] * 14),          # middle (30 s)
        (3, [[40, 90], [100, 140]], 150, list(range(20, 45)), [2] * 24 + [4]),  # long
    ]
    gts, preds = [], []
    for q, win, dur, ids, s in cases:
        gts.append(gt(q, win, dur, ids, [[v, v, v] for v in s]))
        windows = [[st, ed, 0.9 - 0.1 * i] for i, (st, ed) in enumerate(win)]
        windows.append([dur - 2, dur, 0.01])  # a low-scored wrong window after them
        preds.append(pred(q, windows, dense(dur // 2, ids, s)))
    brief = evaluate_tlg(preds, gts)
    assert list(brief) == list(BRIEF_KEYS)
    assert brief == {k: 100.0 for k in BRIEF_KEYS}


def test_single_query_ap_and_r1_by_hand():
    # GT [0, 10]. Ranked predictions: [0, 8] (IoU 8/10 = 0.8), [0, 10] (IoU 1), [20, 30] (IoU 0).
    # t <= 0.8 (7 thresholds): TP FP FP -> AP 1.  t in {0.85, 0.9, 0.95}: [0, 8] misses, [0, 10]
    # is a TP at rank 2 -> precision 1/2 at recall 1 -> AP 0.5.  mAP = (7 + 1.5) / 10 = 85.0.
    # R1: the first window has IoU 0.8 -> hit for t <= 0.8, miss above.
    res = evaluate_tlg([pred(1, [[0, 8, 0.9], [0, 10, 0.8], [20, 30, 0.7]])],
                       [gt(1, [[0, 10]])], detailed=True)
    b = res["brief"]
    assert b["MR-full-mAP"] == 85.0
    assert b["MR-full-mAP@0.5"] == b["MR-full-mAP@0.75"] == 100.0
    assert res["full"]["MR-mAP"]["0.85"] == res["full"]["MR-mAP"]["0.95"] == 50.0
    assert b["MR-full-R1@0.5"] == b["MR-full-R1@0.7"] == 100.0
    assert res["full"]["MR-R1"]["0.8"] == 100.0 and res["full"]["MR-R1"]["0.85"] == 0.0
    assert b["MR-short-mAP"] == 85.0  # the GT window is 10 s long: short
    assert "MR-middle-mAP" not in b and "MR-long-mAP" not in b  # empty buckets: absent
    assert "middle" not in res and "long" not in res
    assert not any(k.startswith("HL-") for k in b)  # no saliency anywhere: no HL keys


def test_interpolated_ap_by_hand():
    # GT [0,10], [20,30], [40,50]. Ranked: [0,10] (IoU 1 with G1), [60,70] (0), [20,28] (0.8 with
    # G2), [40,50] (1 with G3).
    # t <= 0.8: TP FP TP TP, precision 1, 1/2, 2/3, 3/4 at recall 1/3, 1/3, 2/3, 1. Interpolated
    #   (max precision at >= recall): 1, 3/4, 3/4 -> AP = (1 + 3/4 + 3/4) / 3 = 0.8333
    #   (without interpolation it would be (1 + 2/3 + 3/4) / 3 = 0.8056).
    # t > 0.8: TP FP FP TP, recall 1/3 at precision 1, 2/3 at 1/2, and 1 never reached:
    #   AP = (1 + 1/2 + 0) / 3 = 0.5.   mAP = (7 * 0.8333 + 3 * 0.5) / 10 = 73.33.
    p = [[0, 10, 0.9], [60, 70, 0.8], [20, 28, 0.7], [40, 50, 0.6]]
    g = [[0, 10], [20, 30], [40, 50]]
    ap = moment_ap(np.array(p), np.array(g))
    np.testing.assert_allclose(ap, [2.5 / 3] * 7 + [0.5] * 3, rtol=0, atol=1e-15)
    b = evaluate_tlg([pred(1, p)], [gt(1, g)])
    assert (b["MR-full-mAP"], b["MR-full-mAP@0.5"], b["MR-full-mAP@0.75"]) == (73.33, 83.33, 83.33)
    assert voc_ap(np.array([1, 1 / 2, 2 / 3, 3 / 4]), np.array([1, 1, 2, 3]) / 3) == \
        pytest.approx(2.5 / 3, abs=1e-15)


def test_length_buckets_at_the_10_and_30_second_boundaries():
    # Buckets are (0, 10], (10, 30], (30, 150] s of GT window length; a query counts in a bucket
    # with only its GT windows of that length, and all its predictions.
    gts = [gt(1, [[0, 10]]),             # 10 s   -> short
           gt(2, [[0, 30]]),             # 30 s   -> middle
           gt(3, [[0, 30.5]]),           # 30.5 s -> long
           gt(4, [[0, 10], [20, 50]]),   # 10 s short + 30 s middle
           gt(5, [[5, 15.5]])]           # 10.5 s -> middle
    preds = [pred(1, [[0, 10, 0.9]]), pred(2, [[0, 30, 0.9]]), pred(3, [[0, 30.5, 0.9]]),
             pred(4, [[0, 10, 0.9]]), pred(5, [[5, 15.5, 0.9]])]
    res = evaluate_tlg(preds, gts, detailed=True)
    assert {b: res[b]["num_queries"] for b in ("short", "middle", "long", "full")} == \
        {"short": 2, "middle": 3, "long": 1, "full": 5}
    # full: q4 has 2 GT windows and 1 TP at rank 1 -> AP = 1/2 * 1 = 0.5; others 1 -> 4.5/5.
    assert res["brief"]["MR-full-mAP"] == 90.0
    assert res["brief"]["MR-short-mAP"] == 100.0   # q1: 1, q4 (GT [0,10] only): 1
    assert res["brief"]["MR-middle-mAP"] == 66.67  # q2: 1, q4 (GT [20,50] only): 0, q5: 1
    assert res["brief"]["MR-long-mAP"] == 100.0    # q3
    assert res["middle"]["MR-R1"]["0.5"] == 66.67  # q4's top window misses [20, 50]
    assert res["brief"]["MR-full-R1@0.7"] == 100.0


def test_duplicate_gt_windows_each_need_a_prediction():
    # GT [0,10] twice = 2 positives. One exact prediction: recall 1/2 at precision 1 -> AP 0.5.
    one = evaluate_tlg([pred(1, [[0, 10, 0.9]])], [gt(1, [[0, 10], [0, 10]])])
    two = evaluate_tlg([pred(1, [[0, 10, 0.9], [0, 10, 0.8]])], [gt(1, [[0, 10], [0, 10]])])
    assert one["MR-full-mAP"] == 50.0 and two["MR-full-mAP"] == 100.0
    assert one["MR-full-R1@0.7"] == 100.0


def test_only_the_first_10_listed_windows_count_and_r1_uses_the_first_listed():
    # mAP takes the first 10 windows *as listed*, then ranks them by score: an exact window
    # listed 11th is ignored even with the best score -> 0.
    far = [[50, 60, 0.5]] * 10
    late = evaluate_tlg([pred(1, far + [[0, 10, 0.99]])], [gt(1, [[0, 10]])])
    assert late["MR-full-mAP"] == 0.0
    early = evaluate_tlg([pred(1, [[0, 10, 0.99]] + far)], [gt(1, [[0, 10]])])
    assert early["MR-full-mAP"] == 100.0
    # R1 takes the first listed window, not the best scored: unsorted lists differ.
    unsorted = evaluate_tlg([pred(1, [[50, 60, 0.1], [0, 10, 0.9]])], [gt(1, [[0, 10]])])
    assert unsorted["MR-full-mAP"] == 100.0 and unsorted["MR-full-R1@0.5"] == 0.0


# ----------------------------------------------------------------------------- HL by hand

def hl_brief(duration, ids, scores, saliency):
    return evaluate_tlg([pred(1, saliency=saliency)], [gt(1, None, duration, ids, scores)])


def test_hl_hit1_when_the_top_clip_is_or_is_not_positive():
    # 5 clips; clip 1 = [4, 0, 0] (positive at every level for annotator 0), clip 2 = [1, 1, 1].
    ids, scores = [1, 2], [[4, 0, 0], [1, 1, 1]]
    top1 = hl_brief(10, ids, scores, [0, 0.9, 0.1, 0, 0])
    assert top1["HL-min-Fair-Hit1"] == top1["HL-min-VeryGood-Hit1"] == 100.0  # any annotator
    assert not any(k.startswith("MR-") for k in top1)  # no windows anywhere: no MR keys
    top2 = hl_brief(10, ids, scores, [0, 0.1, 0.9, 0, 0])
    assert top2["HL-min-Fair-Hit1"] == 0.0  # scores 1 < 2
    # Top score at index 6 of a 7-long list, past the 5 clips: a miss. AP uses the list cut to
    # 5 clips, where clip 1 ranks first: annotator 0 AP 1, annotators 1 and 2 have no positive
    # (AP 0) -> mAP 1/3.
    past = hl_brief(10, ids, scores, [0, 0.5, 0, 0, 0, 0, 0.9])
    assert past["HL-min-Fair-Hit1"] == 0.0 and past["HL-min-Fair-mAP"] == 33.33


def test_hl_ap_is_averaged_over_annotators():
    # 3 clips, scores [[4,0,2],[0,4,2],[0,0,2]], prediction ranks clip 0 > 1 > 2.
    # >= 4 (and >= 3): annotator 0 positive {0}: AP 1; annotator 1 {1}: ranked 2nd -> 1/2;
    #   annotator 2 none: 0 -> mAP (1 + 0.5 + 0) / 3 = 50.
    # >= 2: annotator 2 has every clip positive: AP 1 -> (1 + 0.5 + 1) / 3 = 83.33.
    b = hl_brief(6, [0, 1, 2], [[4, 0, 2], [0, 4, 2], [0, 0, 2]], [0.9, 0.5, 0.1])
    assert b["HL-min-VeryGood-mAP"] == b["HL-min-Good-mAP"] == 50.0
    assert b["HL-min-Fair-mAP"] == 83.33
    assert b["HL-min-VeryGood-Hit1"] == 100.0  # clip 0 is a 4 for annotator 0


def test_hl_ap_with_tied_scores():
    # Positives {0, 2} of 5 clips. Scores [0.9, 0.9, 0.5, 0.1, 0.1] rank {0,1} together
    # (2 clips, 1 TP: precision 1/2), then {2} (3 clips, 2 TP: 2/3), then {3,4} (5 clips: 2/5).
    # Ranks adding a positive: {0,1} and {2}; interpolated precision max(1/2, 2/3, 2/5) = 2/3 and
    # max(2/3, 2/5) = 2/3 -> AP 2/3. Breaking the tie ([0.9, 0.8, ...]): (1 + 2/3) / 2 = 0.8333.
    same = [[2, 2, 2], [2, 2, 2]]
    assert hl_brief(10, [0, 2], same, [0.9, 0.9, 0.5, 0.1, 0.1])["HL-min-Fair-mAP"] == 66.67
    assert hl_brief(10, [0, 2], same, [0.9, 0.8, 0.5, 0.1, 0.1])["HL-min-Fair-mAP"] == 83.33
    assert saliency_ap(np.array([1, 0, 1, 0, 0]), np.array([0.9, 0.9, 0.5, 0.1, 0.1])) == \
        pytest.approx(2 / 3, abs=1e-15)


def test_hl_prediction_padding_and_truncation():
    same = [[2, 2, 2], [2, 2, 2]]
    # 3 scores for 5 clips: zero-padded to [-1, -1, -1, 0, 0], so the positive clips 3 and 4
    # (padded zeros) outrank the negative scores: AP 1. Hit@1 takes argmax of the given list
    # (clip 0, not positive): 0.
    b = hl_brief(10, [3, 4], same, [-1.0, -1.0, -1.0])
    assert b["HL-min-Fair-mAP"] == 100.0 and b["HL-min-Fair-Hit1"] == 0.0
    # 7 scores for 5 clips: cut to [0, 0, 0, 0, 0], one tied rank of 5 clips with 1 positive:
    # AP 1/5. The top score (index 5) lies past the video: no hit.
    b = hl_brief(10, [0], [[2, 2, 2]], [0, 0, 0, 0, 0, 5, 5])
    assert b["HL-min-Fair-mAP"] == 20.0 and b["HL-min-Fair-Hit1"] == 0.0


def test_hl_all_positive_and_all_negative_videos():
    # 2 clips both scored 2: at >= 2 every clip is positive -> AP 1 whatever the ranking;
    # at >= 3 none is -> AP 0.
    b = hl_brief(4, [0, 1], [[2, 2, 2], [2, 2, 2]], [0.1, 0.9])
    assert b["HL-min-Fair-mAP"] == 100.0 and b["HL-min-Good-mAP"] == 0.0
    assert b["HL-min-Good-Hit1"] == 0.0
    # A video with no relevant clip at all.
    assert hl_brief(4, [], [], [0.1, 0.9])["HL-min-Fair-mAP"] == 0.0


def test_gt_without_saliency_omits_hl_keys():
    preds = [pred(1, [[0, 10, 0.9]], saliency=[0.1] * 5)]
    b = evaluate_tlg(preds, [gt(1, [[0, 10]])])
    assert set(b) == set(MR_KEYS) - {"MR-middle-mAP", "MR-long-mAP"}


# ----------------------------------------------------------------------------- bad input

def _good():
    return ([pred(1, [[0, 10, 0.9]], [0.1, 0.2]), pred(2, [[2, 4, 0.5]], [0.3, 0.1])],
            [gt(1, [[0, 10]], 4, [0], [[2, 2, 2]]), gt(2, [[2, 4]], 4, [1], [[3, 1, 0]])])


def _set(line, key, value):
    line[key] = value


BAD = {
    "missing_gt_qid": (lambda p, g: p.pop(), r"1 GT qid\(s\) without prediction \(first: \[2\]\)"),
    "extra_pred_qid": (lambda p, g: p.append(pred(7, [[0, 1, 1]], [0.0])),
                       r"1 predicted qid\(s\) not in the GT \(first: \[7\]\)"),
    "dup_pred_qid": (lambda p, g: p.append(pred(1, [[0, 1, 1]], [0.0])),
                     r"predictions\[2\]: duplicate qid 1 in predictions"),
    "dup_gt_qid": (lambda p, g: g.append(gt(2, [[0, 1]])), r"duplicate qid 2 in ground truth"),
    "end_before_start": (lambda p, g: _set(p[1], "pred_relevant_windows", [[5, 3, 0.9]]),
                         r"predictions\[1\] \(qid 2\): pred_relevant_windows\[0\] .* end < start"),
    "gt_end_before_start": (lambda p, g: _set(g[0], "relevant_windows", [[0, 10], [8, 8]]),
                            r"ground_truth\[0\] \(qid 1\): relevant_windows\[1\] .* end <= start"),
    "missing_pred_windows": (lambda p, g: p[1].pop("pred_relevant_windows"),
                             r"qid 2\): missing field 'pred_relevant_windows'"),
    "missing_gt_windows": (lambda p, g: g[1].pop("relevant_windows"),
                           r"qid 2\): missing field 'relevant_windows'"),
    "missing_duration": (lambda p, g: g[0].pop("duration"), r"qid 1\): missing field 'duration'"),
    "missing_qid": (lambda p, g: p[0].pop("qid"), r"predictions\[0\]: missing field 'qid'"),
    "score_string": (lambda p, g: _set(p[0], "pred_relevant_windows", [[0, 10, "high"]]),
                     r"qid 1\): pred_relevant_windows must contain only numbers"),
    "score_bool": (lambda p, g: _set(p[0], "pred_relevant_windows", [[0, 10, True]]),
                   r"qid 1\): pred_relevant_windows must contain only numbers"),
    "score_none": (lambda p, g: _set(p[0], "pred_saliency_scores", [0.1, None]),
                   r"qid 1\): pred_saliency_scores must contain only numbers"),
    "score_nan": (lambda p, g: _set(p[1], "pred_relevant_windows", [[0, 1, 1], [0, 2, math.nan]]),
                  r"qid 2\): pred_relevant_windows\[1\] = \[0, 2, nan\] is NaN or infinite"),
    "saliency_inf": (lambda p, g: _set(p[0], "pred_saliency_scores", [math.inf, 0.0]),
                     r"qid 1\): pred_saliency_scores\[0\] = inf is NaN or infinite"),
    "window_no_score": (lambda p, g: _set(p[0], "pred_relevant_windows", [[0, 10]]),
                        r"pred_relevant_windows must have shape \[n, 3\], got \[1, 2\]"),
    "ragged_windows": (lambda p, g: _set(p[0], "pred_relevant_windows", [[0, 10, 1], [0, 1]]),
                       r"pred_relevant_windows must be a rectangular list of numbers"),
    "no_windows": (lambda p, g: _set(p[0], "pred_relevant_windows", []),
                   r"qid 1\): pred_relevant_windows is empty"),
    "clip_out_of_video": (lambda p, g: _set(g[0], "relevant_clip_ids", [2]),
                          r"qid 1\): relevant_clip_ids must be integers in \[0, 2\)"),
    "saliency_rows": (lambda p, g: _set(g[0], "saliency_scores", [[1, 1, 1], [2, 2, 2]]),
                      r"saliency_scores has 2 rows but relevant_clip_ids has 1"),
    "annotators": (lambda p, g: _set(g[1], "saliency_scores", [[1, 1]]),
                   r"qid 2\): saliency_scores has 2 annotator scores per clip"),
    "no_prediction_field": (lambda p, g: [d.pop(k) for d in p for k in
                                          ("pred_relevant_windows", "pred_saliency_scores")],
                            r"neither 'pred_relevant_windows' nor 'pred_saliency_scores'"),
    "no_labels": (lambda p, g: [d.pop(k) for d in g for k in ("relevant_windows",
                                                              "saliency_scores")],
                  r"nothing to evaluate"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_value_error_naming_line_and_qid(case):
    preds, gts = _good()
    evaluate_tlg(preds, gts)  # the unmodified input is fine
    mutate, message = BAD[case]
    mutate(preds, gts)
    with pytest.raises(ValueError, match=message):
        evaluate_tlg(preds, gts)


def test_not_a_list_raises_type_error():
    with pytest.raises(TypeError, match="predictions must be a list of dicts"):
        evaluate_tlg({"qid": 1}, _good()[1])
    with pytest.raises(ValueError, match="ground truth is empty"):
        evaluate_tlg(_good()[0], [])


def test_file_errors_name_file_and_line(tmp_path):
    preds, gts = _good()
    gt_path, pred_path = tmp_path / "gt.jsonl", tmp_path / "preds.jsonl"
    save_jsonl(gts, gt_path)
    save_jsonl(preds, pred_path)
    assert evaluate_tlg_files(pred_path, gt_path) == evaluate_tlg(preds, gts)
    # json.dumps writes NaN as the bare token NaN, which json.loads accepts: line 2 is bad.
    preds[1]["pred_relevant_windows"][0][2] = math.nan
    save_jsonl(preds, pred_path)
    with pytest.raises(ValueError, match=r"preds\.jsonl:2 \(qid 2\): .* is NaN or infinite"):
        evaluate_tlg_files(pred_path, gt_path)
    # Malformed JSON, after a blank line (blank lines are skipped but counted).
    gt_path.write_text(json.dumps(gts[0]) + "\n\n" + '{"qid": 2, "relevant_windows": [[2, 4]\n')
    with pytest.raises(ValueError, match=r"gt\.jsonl:3: malformed JSON line"):
        evaluate_tlg_files(pred_path, gt_path)
    gt_path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"gt\.jsonl:1: expected a JSON object"):
        load_jsonl(gt_path)


def test_command_line(tmp_path, capsys):
    preds, gts = _good()
    save_jsonl(preds, tmp_path / "p.jsonl")
    save_jsonl(gts, tmp_path / "g.jsonl")
    argv = ["--pred", str(tmp_path / "p.jsonl"), "--gt", str(tmp_path / "g.jsonl")]
    assert tlg_main(argv + ["--out", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "m.json").read_text()) == evaluate_tlg(preds, gts)
    assert tlg_main(argv + ["--detailed"]) == 0
    assert json.loads(capsys.readouterr().out)["full"]["MR-mAP"]["0.5"] == 100.0
    # Bad input: exit status 1 and the reason on stderr, no traceback.
    save_jsonl(preds[:1], tmp_path / "p.jsonl")
    assert tlg_main(argv) == 1
    assert "without prediction (first: [2])" in capsys.readouterr().err


# ----------------------------------------------------------------------------- prediction lines

def test_windows_to_pred_line_sorts_truncates_and_round_trips(tmp_path):
    torch = pytest.importorskip("torch")
    windows = torch.tensor([[20.0, 30.0, 0.2], [0.0, 10.0, 0.9], [40.0, 42.0, 0.5]],
                           dtype=torch.float64)
    line = windows_to_pred_line(np.int64(3), "a query", "vid", windows, torch.tensor([0.1, 0.7]),
                                k=2)
    assert line == {"qid": 3, "query": "a query", "vid": "vid",
                    "pred_relevant_windows": [[0.0, 10.0, 0.9], [40.0, 42.0, 0.5]],
                    "pred_saliency_scores": [pytest.approx(0.1), pytest.approx(0.7)]}
    save_jsonl([line], tmp_path / "p.jsonl")  # JSON-ready: plain Python numbers
    assert load_jsonl(tmp_path / "p.jsonl")[0]["qid"] == 3
    b = evaluate_tlg([line], [gt(3, [[0, 10]], 4, [1], [[4, 4, 4]])])
    assert b["MR-full-R1@0.7"] == 100.0 and b["HL-min-VeryGood-Hit1"] == 100.0
    # Ties keep their order; k larger than K keeps all.
    tied = top_k_windows([[1, 2, 0.5], [3, 4, 0.5], [5, 6, 0.7]], k=10)
    assert tied.tolist() == [[5, 6, 0.7], [1, 2, 0.5], [3, 4, 0.5]]
    with pytest.raises(ValueError, match=r"shape \[K, 3\]"):
        top_k_windows(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        windows_to_pred_line(1, "q", "v", [[0, 1, math.nan]], [0.0])
