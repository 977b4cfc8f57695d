r"""Mechanism probes for VLS (issue 15): does READ's recurrence carry clip order into the
summary, does PVLA align the transcript with the video inside a trained VG-BART / VG-T5, and
how sensitive is READ-PVLA to its settings? One grid of runs (:func:`run_probes`), three tables.

**Order.** A hard-target summary lists the video's steps in the order they happen; some steps
only the video shows, so their place comes from the clip order (the backbone's clip positions).
Two per-video scores read it off the generated summary (:func:`step_order`): over the
:math:`\binom K2` pairs of the video's K steps, *steps named* = the share of pairs whose two
steps ("<verb> the <object>") both appear, *steps in order* = the share that appear in the right
order. Treatment: every video's clips in a fixed random order (:func:`shuffle_clips`, the same
permutation in training and test: the positions then say nothing about the steps' order);
control: the clips as recorded. If READ's recurrence injected order, READ's lead over the
per-token adapter on *steps in order* would change when order is gone:

.. math:: \Delta\Delta = (\text{READ} - \text{Adapter})_{\text{shuffled}}
          - (\text{READ} - \text{Adapter})_{\text{ordered}}

with *steps named* as the check that the effect is about order, not content
(:func:`readpvla.experiment.difference_in_differences`). **Architecture note:** in VG-BART /
VG-T5 the clips pass only through the video projection and the fusion attention; READ sits in
the text encoder's and the decoder's feed-forward blocks, so its recurrence runs along
transcript and summary tokens, never along the clips. A difference in differences of 0 is what
that predicts.

**Alignment.** PVLA's partial plan :math:`T^{(m)}` between the clips :math:`H_V` and the
transcript tokens :math:`H_L^{(m)}` of encoder layer m (:func:`~.loss.pvla_term`'s layers)
should move its mass along pairs that belong together. Ground truth (:func:`plan_mass_on_steps`):
a word of the transcript that is the verb or object of step s belongs with the clips that show
step s (:func:`readpvla.data.how2.clip_step_labels`). Per video

.. math:: \text{share} = \frac{\sum_{(i,j) \in \mathcal G} T_{ij}}{\sum_{ij} T_{ij}},\qquad
          \text{chance} = \frac{|\mathcal G|}{N_V N_L}

(percent; a plan that ignores content puts ``chance`` there). Compared: READ-PVLA, READ
(no PVLA) and the frozen backbone (the control).

**Sensitivity.** READ-PVLA with one setting moved at a time (:data:`SENSITIVITY_ROWS`: lambda,
mass, bottleneck, learning rate) beside the adapter, READ and READ-PVLA; "Δ vs Adapter" on
ROUGE-1 with a 95% paired bootstrap interval over test videos x seeds.

**(choices)** The probes' budget is :data:`PROBE_CONFIG`: the hard target, the shipped tables'
250 steps without model selection (a probe asks what training does; selection by validation
ROUGE-L keeps the untuned start for every small adapter at the tables' k = 4), bottleneck 16
(the size at which the equal-effort protocol found READ and the adapter leave the start on
VG-BART). The plan is measured with the default PVLA settings (mass 0.5, tau 0.05) for every row.

::

    from readpvla.tasks import vls
    out = vls.run_probes("bart", seeds=(0, 1, 2), out_dir="runs/vls_probes", workers=2)
    print(out["markdown"])

``readpvla probe-vls --backbone bart --out runs/vls_probes --workers 2`` runs it.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readpvla import experiment as ex
from readpvla import ot
from readpvla.backbones.vg import VisionGuidedSeq2Seq
from readpvla.data.how2 import How2Collator, How2Sample, clip_step_labels, load_split

from .data import model_inputs
from .evaluate import METRICS, VIDEO_METRIC, evaluate, with_video_slice
from .loss import PVLASettings
from .pretrain import DATA_ROOT, backbone_class, load_backbone
from .rows import TransferConfig, row_label, sized_row

__all__ = ["ALIGN_ROWS", "NAMED_METRIC", "ORDER_METRIC", "ORDER_ROWS", "PROBE_CONFIG",
           "SENSITIVITY_ROWS", "order_given_named", "order_scores", "plan_mass_on_steps", "probe_metrics",
           "probe_rows", "run_probes", "shuffle_clips", "step_order"]

#: the per-video order scores (percent of step pairs)
NAMED_METRIC, ORDER_METRIC = "steps named", "steps in order"
#: the probes' budget (module docstring, "choices")
PROBE_CONFIG = dataclasses.replace(TransferConfig.medium(), target="hard", bottleneck=16)
#: the order probe's rows: the recurrent adapter and two that act per token
ORDER_ROWS = ("adapter", "read", "lora")
#: the alignment probe's rows (the frozen backbone is added as the control)
ALIGN_ROWS = ("read", "read-pvla")
#: READ-PVLA with one setting moved from :data:`PROBE_CONFIG`'s (lambda 1, mass 0.5, k 16)
SENSITIVITY_ROWS = ("read-pvla [lambda=0.1]", "read-pvla [lambda=0.3]", "read-pvla [lambda=3]",
                    "read-pvla [mass=0.2]", "read-pvla [mass=0.8]", "read-pvla [lr×0.3]",
                    "read-pvla [lr×3]")
#: the plan settings every probe measures with (the training loss's defaults)
PLAN = PVLASettings()
BACKBONE_ROW = "backbone"
BACKBONE_LABEL = "Backbone (frozen)"


# -- order ----------------------------------------------------------------------------------------
def step_order(prediction: str, steps: Sequence[str]) -> tuple[float, float]:
    """``(named, in order)``: over the pairs (i < j) of ``steps`` (in the order they happen),
    the percent whose two phrases both occur in ``prediction`` (as whole words), and the percent
    that occur with step i's first occurrence before step j's. One step: (100, 100) if named,
    else (0, 0)."""
    if not steps:
        raise ValueError("step_order needs the video's steps")
    words = f" {' '.join(prediction.split())} "
    pos = [words.find(f" {' '.join(s.split())} ") for s in steps]
    if len(steps) == 1:
        return (100.0, 100.0) if pos[0] >= 0 else (0.0, 0.0)
    pairs = [(pos[i], pos[j]) for i in range(len(steps)) for j in range(i + 1, len(steps))]
    named = sum(a >= 0 and b >= 0 for a, b in pairs)
    ordered = sum(0 <= a < b for a, b in pairs)
    return 100.0 * named / len(pairs), 100.0 * ordered / len(pairs)


def order_scores(predictions: Sequence[str], samples: Sequence[How2Sample]
                 ) -> dict[str, list[float]]:
    """:func:`step_order` of every video: ``{NAMED_METRIC: [...], ORDER_METRIC: [...]}``."""
    if len(predictions) != len(samples):
        raise ValueError(f"{len(predictions)} predictions for {len(samples)} videos")
    pairs = [step_order(p, s.steps) for p, s in zip(predictions, samples)]
    return {NAMED_METRIC: [round(a, 4) for a, _ in pairs],
            ORDER_METRIC: [round(b, 4) for _, b in pairs]}


def shuffle_clips(samples: Sequence[How2Sample]) -> list[How2Sample]:
    """Copies of ``samples`` with each video's clips in a fixed random order: the permutation is
    seeded by the video's id, so a video is shuffled the same way wherever it is read."""
    out = []
    for s in samples:
        perm = np.random.default_rng(zlib.crc32(s.vid.encode())).permutation(len(s.video))
        out.append(dataclasses.replace(s, video=np.ascontiguousarray(s.video[perm])))
    return out


def order_given_named(records: Sequence[dict[str, Any]], row: str) -> dict[str, float]:
    """Of the step pairs ``row``'s summaries name, the share they put in the right order: the
    ratio of the means of :data:`ORDER_METRIC` and :data:`NAMED_METRIC` over every test video
    and seed of its runs. Returns ``{"percent", "named"}`` (``named``: the mean of
    :data:`NAMED_METRIC`; ``percent`` 0 where nothing is named). A summary that puts its steps
    in random order gets 50%."""
    named = [x for r in records if r.get("row") == row and "error" not in r
             for x in r["per_item"][NAMED_METRIC]]
    ordered = [x for r in records if r.get("row") == row and "error" not in r
               for x in r["per_item"][ORDER_METRIC]]
    if not named:
        raise ValueError(f"no run of {row!r}")
    mean_named = float(np.mean(named))
    return {"percent": round(100.0 * float(np.mean(ordered)) / mean_named, 2)
            if mean_named > 0 else 0.0, "named": round(mean_named, 4)}


# -- alignment ------------------------------------------------------------------------------------
def _step_words(sample: How2Sample) -> dict[str, set[int]]:
    """word -> the indices of the steps whose verb or object it is."""
    out: dict[str, set[int]] = {}
    for k, step in enumerate(sample.steps):
        parts = step.split()
        for w in (parts[0], parts[-1]):
            out.setdefault(w, set()).add(k)
    return out


def _ground_truth(samples: Sequence[How2Sample], collate: How2Collator, n_v: int, n_l: int
                  ) -> torch.Tensor:
    """bool ``[B, N_V, N_L]``: clip i shows a step that transcript token j names."""
    gt = torch.zeros(len(samples), n_v, n_l, dtype=torch.bool)
    encs = collate.tokenizer.encode_batch([s.transcript for s in samples])
    for b, (s, enc) in enumerate(zip(samples, encs)):
        labels = clip_step_labels(s)[: collate.max_clips]
        words, names = s.transcript.split(), _step_words(s)
        ids = enc.word_ids[: collate.max_source_len - 1] if len(enc.ids) > \
            collate.max_source_len else enc.word_ids
        for j, w in enumerate(ids[:n_l]):
            if w is None or w >= len(words):
                continue
            for k in names.get(words[w], ()):
                gt[b, : len(labels), j] |= torch.from_numpy(labels == k)
    return gt


@torch.no_grad()
def plan_mass_on_steps(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample],
                       collate: How2Collator, pvla: PVLASettings = PLAN,
                       batch_size: int = 32) -> dict[str, Any]:
    """The share of each layer's PVLA plan mass on the (clip, word) pairs of the same step
    (module docstring), for every video of ``samples``.

    Args:
        model: a VG-BART / VG-T5 (with or without an adapter; run in eval mode, left as it was).
        samples: synthetic videos (with ``steps``; clips labelled by
            :func:`~readpvla.data.how2.clip_step_labels`).
        collate: the backbone's collator (its tokenizer maps tokens to words).
        pvla: the plan's mass, tau and iteration cap (``weight`` and ``layers`` are ignored:
            every layer of :func:`~.loss.pvla_term` is measured).

    Returns:
        ``{"layers": [{"layer", "share", "chance", "lift", "per_item": {"share", "chance"}}],
        "n_videos"}``: per layer the mean over videos (percent), ``lift`` = share / chance.

    Raises:
        ValueError: no samples, or a sample without steps.
    """
    if not samples:
        raise ValueError("plan_mass_on_steps needs at least one video")
    was = model.training
    model.eval()
    shares: list[list[float]] = []
    chances: list[float] = []
    try:
        dev = next(model.parameters()).device
        for i in range(0, len(samples), batch_size):
            chunk = samples[i: i + batch_size]
            batch = collate(chunk)
            out = model(**{k: v.to(dev) for k, v in model_inputs(batch).items()})
            h_ls = [*out.h_l_layers[: model.fusion_layer], out.h_l]
            gt = _ground_truth(chunk, collate, out.h_v.shape[1], out.h_l.shape[1]).to(dev)
            gt &= out.mask_v[:, :, None] & out.mask_l[:, None, :]
            n_pairs = (out.mask_v.sum(1) * out.mask_l.sum(1)).clamp(min=1)
            chances += (100.0 * gt.sum((1, 2)) / n_pairs).tolist()
            per_layer = [ot.plan_share(out.h_v, h_l, gt, pvla.mass, pvla.tau, pvla.max_iter,
                                       mask_v=out.mask_v, mask_l=out.mask_l).tolist()
                         for h_l in h_ls]
            shares += [list(x) for x in zip(*per_layer)]  # (B, M)
    finally:
        model.train(was)
    layers = ot.summarize_shares(shares, chances, "layer")
    return {"layers": layers, "n_videos": len(shares)}


def probe_metrics(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample],
                  collate: How2Collator, predictions: Sequence[str]
                  ) -> dict[str, dict[str, Any]]:
    """Every probe metric of a trained model on ``samples``: ``{metric: {"mean", "per_item"}}``
    for :data:`NAMED_METRIC`, :data:`ORDER_METRIC` (of ``predictions``, the model's summaries),
    ``"share, layer m"`` per PVLA layer and ``"chance"`` (:func:`plan_mass_on_steps` at
    :data:`PLAN`, the same plan settings for every row whatever it trained with)."""
    out = {k: {"mean": round(float(np.mean(v)), 4), "per_item": v}
           for k, v in order_scores(predictions, samples).items()}
    plan = plan_mass_on_steps(model, samples, collate, PLAN)
    for layer in plan["layers"]:
        out[f"share, layer {layer['layer']}"] = {"mean": layer["share"],
                                                 "per_item": layer["per_item"]["share"]}
    first = plan["layers"][0]
    out["chance"] = {"mean": first["chance"], "per_item": first["per_item"]["chance"]}
    return out


# -- the probes' grid and tables -------------------------------------------------------------------
def probe_rows(config: TransferConfig = PROBE_CONFIG) -> dict[str, list[str]]:
    """The grid rows of each table: ``{"order": ..., "alignment": ..., "sensitivity": ...}``
    (rows end in a :func:`~.rows.parse_variant` suffix; ``"[probe]"`` only adds the metrics)."""
    base = {m: f"{m} [probe]" for m in ("adapter", "read", "lora", "read-pvla")}
    small = sized_row("read-pvla", 4, config.bottleneck)
    if small == "read-pvla":
        small = sized_row("read-pvla", 16, config.bottleneck)
    return {"order": [base[m] for m in ORDER_ROWS]
            + [f"{m} [clips shuffled]" for m in ORDER_ROWS],
            "alignment": [base[m] for m in ALIGN_ROWS],
            "sensitivity": [base["adapter"], base["read"], base["read-pvla"],
                            *SENSITIVITY_ROWS, f"{small} [probe]"]}


def _frozen_records(backbone: str, config: TransferConfig, seeds: Sequence[int],
                    data_root: str | Path, checkpoint: str | Path | None,
                    device: str | torch.device) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The frozen backbone's probe scores (one record per seed: nothing is random), and its
    scores on shuffled test clips (how much the untuned model uses clip order)."""
    import readpvla.peft as peft

    base, tok = load_backbone(backbone, data_root, checkpoint)
    base = base.to(device).eval()
    collate = How2Collator(tok)
    test = load_split(data_root, config.split("test"))[: config.n_test]
    out = {}
    for name, samples in (("ordered", test), ("shuffled", shuffle_clips(test))):
        ev = evaluate(base, samples, collate, num_beams=config.num_beams)
        rec = {"row": BACKBONE_ROW, "split": "test", "test": {k: ev[k] for k in METRICS},
               "per_item": {k: ev["per_sample"][k] for k in METRICS}}
        rec = with_video_slice(rec, samples)
        scores = probe_metrics(base, samples, collate, ev["predictions"])
        rec["test"].update({k: v["mean"] for k, v in scores.items()})
        rec["per_item"].update({k: v["per_item"] for k, v in scores.items()})
        out[name] = rec
    count = peft.count_parameters(base)
    recs = [{**out["ordered"], "seed": int(s), "params": "0 (0.00%)", "trainable": 0,
             "total": count.total} for s in seeds]
    return recs, {k: v["test"] for k, v in out.items()}


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with its per-video scores rounded to 2 decimals, without the
    per-video ROUGE-2 (no probe table shows it; its mean stays in ``test``)."""
    return {**record, "per_item": {k: [round(float(x), 2) for x in v]
                                   for k, v in record.get("per_item", {}).items()
                                   if k != "rouge2"}}


def _columns(n_layers: int, order: bool = True) -> tuple[ex.Column, ...]:
    return ((ex.Column("R1", "test", "rouge1"), ex.Column("RL", "test", "rougeL"))
            + ((ex.Column("Steps named", "test", NAMED_METRIC),
                ex.Column("Steps in order", "test", ORDER_METRIC)) if order else ())
            + tuple(ex.Column(f"Share, layer {m}", "test", f"share, layer {m}")
                    for m in range(n_layers)))


def run_probes(backbone: str = "bart", seeds: Sequence[int] = (0, 1, 2),
               out_dir: str | Path | None = "runs/vls_probes", *,
               config: TransferConfig = PROBE_CONFIG, data_root: str | Path = DATA_ROOT,
               checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
               workers: int = 1, executor: str = "local", address: str | None = None,
               resume: bool = False, progress: bool = False, tables: Sequence[str] = (
                   "order", "alignment", "sensitivity")) -> dict[str, Any]:
    """Run the probes' grid (every row of ``tables`` x ``seeds``, one job per run,
    :func:`readpvla.experiment.run_grid`) and write ``probes_<stem>.{json,md}`` in ``out_dir``
    (checked writable first; each run's record goes to ``runs_probes_<stem>.jsonl`` as it
    finishes, which ``resume`` continues).

    The tables store every run's per-video scores to 0.01 (without per-video ROUGE-2) and are
    summarised from what they store; the run records keep full precision.

    Returns:
        ``{"tables": {name: payload}, "contrasts": {"READ - Adapter": {"steps in order":
        interval, "steps named": interval}, "LoRA - Adapter": ...}, "order_given_named":
        {label: {"ordered": ..., "shuffled": ...}} (:func:`order_given_named`), "frozen":
        {"ordered": scores, "shuffled": scores}, "backbone", "seeds", "wall_seconds",
        "run_seconds", "markdown"}``.

    Raises:
        ValueError: an unknown backbone or table, no seeds, an unwritable ``out_dir``.
        readpvla.experiment.GridError: runs that failed (the others are in the records file).
    """
    from .transfer import jobs

    backbone_class(backbone)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    rows_of = probe_rows(config)
    bad = [t for t in tables if t not in rows_of]
    if bad or not tables:
        raise ValueError(f"unknown table(s) {bad}; known: {list(rows_of)}")
    if out_dir is not None:
        out_dir = ex.check_writable(out_dir)
    stem = config.stem(backbone)
    rows = list(dict.fromkeys(r for t in tables for r in rows_of[t]))
    t0 = time.perf_counter()
    frozen, frozen_scores = _frozen_records(backbone, config, seeds, data_root, checkpoint,
                                            device)
    records = ex.run_grid(jobs(backbone, rows, seeds, config, data_root, checkpoint, device),
                          executor, workers=workers, address=address, resume=resume,
                          progress=progress, records=(out_dir / f"runs_probes_{stem}.jsonl")
                          if out_dir is not None else None)
    wall = time.perf_counter() - t0
    n_layers = sum(k.startswith("share, layer ") for k in frozen[0]["test"])
    name = backbone_class(backbone).__name__
    budget = (f"{config.steps} steps, batch {config.batch_size}, no model selection, "
              f"bottleneck {config.bottleneck}, READ-PVLA lambda {config.pvla_weight:g} and "
              f"mass {config.pvla_mass:g}, greedy summaries of the {config.n_test} test videos "
              f"of the {config.target} target; mean ± std over seeds {seeds}")
    shares = (f"Share, layer m: percent of the PVLA plan's mass (mass 0.5, tau 0.05) between "
              f"the clips and the transcript tokens after encoder layer m that lands on (clip, "
              f"word) pairs of the same step; chance "
              f"{frozen[0]['test']['chance']:.2f}%.")
    payloads, md_parts = {}, []
    specs = {
        "order": ex.TableSpec(
            title=f"Does recurrence carry clip order into the summary? ({name}, hard target)",
            rows=tuple((row_label(r), r) for r in rows_of["order"]),
            columns=_columns(n_layers)[:4], delta=ex.Delta(rows_of["order"][0],
                                                           "Steps in order"),
            note=(f"Steps named / in order: percent of the pairs of a video's steps whose two "
                  "steps the summary names / names in the order they happen. [clips shuffled]: "
                  "every video's clips in a fixed random order in training and test. Frozen "
                  f"backbone: steps in order {frozen_scores['ordered'][ORDER_METRIC]:.2f} "
                  f"(ordered clips), {frozen_scores['shuffled'][ORDER_METRIC]:.2f} "
                  f"(shuffled). {budget}.")),
        "alignment": ex.TableSpec(
            title=f"Does PVLA align the transcript with the video? ({name}, hard target)",
            rows=((BACKBONE_LABEL, BACKBONE_ROW),)
            + tuple((row_label(r), r) for r in rows_of["alignment"]),
            columns=_columns(n_layers, order=False),
            delta=ex.Delta(rows_of["alignment"][0], f"Share, layer {n_layers - 1}"),
            note=f"{shares} {BACKBONE_LABEL}: the pretrained model untouched. {budget}."),
        "sensitivity": ex.TableSpec(
            title=f"READ-PVLA sensitivity ({name}, hard target)",
            rows=tuple((row_label(r), r) for r in rows_of["sensitivity"]),
            columns=(ex.Column("R1", "test", "rouge1"), ex.Column("RL", "test", "rougeL"),
                     ex.Column("Video", "test", VIDEO_METRIC),
                     ex.Column("Steps in order", "test", ORDER_METRIC),
                     ex.Column(f"Share, layer {n_layers - 1}", "test",
                               f"share, layer {n_layers - 1}")),
            delta=ex.Delta(rows_of["sensitivity"][0], "R1"),
            note=(f"Each READ-PVLA row moves one setting (lambda, mass, bottleneck, lr×f: f "
                  f"times READ-PVLA's rate {config.lr('read-pvla'):g}). {shares} {budget}.")),
    }
    # per-video scores kept to 0.01 (percent) in the tables: every summary and interval below
    # is computed from what is stored, and the files stay small (the run records in
    # runs_probes_<stem>.jsonl keep full precision)
    done = [_compact(r) for r in records if "error" not in r]
    frozen = [_compact(r) for r in frozen]
    for t in tables:
        spec = specs[t]
        recs = done + (frozen if t == "alignment" else [])
        summary = ex.summarize(recs, spec, seeds)
        md = ex.format_table(summary, spec)
        keys = {k for _, k in spec.rows}
        payloads[t] = ex.table_payload(spec, summary, [r for r in recs if r["row"] in keys],
                                       seeds, task="vls-probe", backbone=backbone, model=name,
                                       settings=asdict(config))
        payloads[t]["markdown"] = md
        md_parts.append(md)
    contrasts, given_named = {}, {}
    if "order" in tables:
        ordered = [r for r in done if r["row"].endswith(" [probe]")]
        shuffled = [{**r, "row": r["row"].replace(" [clips shuffled]", " [probe]")}
                    for r in done if r["row"].endswith(" [clips shuffled]")]
        for row in ORDER_ROWS[1:]:
            contrasts[f"{row_label(row)} - Adapter"] = {
                metric: ex.difference_in_differences(
                    shuffled, ordered, f"{row} [probe]", "adapter [probe]", metric,
                    seeds).as_dict() for metric in (ORDER_METRIC, NAMED_METRIC)}
        lines = ["#### Difference in differences: (row - Adapter | clips shuffled) - "
                 "(row - Adapter | ordered)", "", "| Row | Steps in order | Steps named |",
                 "|---|---:|---:|"]
        for label, c in contrasts.items():
            lines.append(f"| {label} | " + " | ".join(
                f"{c[k]['diff']:+.2f} [{c[k]['lo']:+.2f}, {c[k]['hi']:+.2f}]"
                for k in (ORDER_METRIC, NAMED_METRIC)) + " |")
        lines += ["", "95% paired bootstrap intervals over test videos x seeds. A contrast "
                  "whose interval holds 0 means the row does not use clip order more than the "
                  "adapter does.", "", "#### Of the step pairs a summary names, the share in "
                  "the right order", "", "| Row | Ordered clips | Clips shuffled |",
                  "|---|---:|---:|"]
        for row in ORDER_ROWS:
            given_named[row_label(row)] = {
                cond: order_given_named(done, f"{row} [{tag}]")
                for cond, tag in (("ordered", "probe"), ("shuffled", "clips shuffled"))}
            lines.append(f"| {row_label(row)} | " + " | ".join(
                "—" if v["named"] == 0 else f"{v['percent']:.1f}% (of {v['named']:.2f}% named)"
                for v in given_named[row_label(row)].values()) + " |")
        lines += ["", "Steps in order / steps named, means over test videos x seeds; 50% is "
                  "what a summary that names steps in random order gets."]
        md_parts.insert(1, "\n".join(lines))
    run_s = sum(float(r.get("seconds") or 0.0) for r in done)
    markdown = "\n\n".join(md_parts) + (f"\n\nWall time of this call: {wall:.0f} s; the "
                                          f"{len(done)} runs took {run_s:.0f} s of run time.\n")
    out = {"tables": payloads, "contrasts": contrasts, "order_given_named": given_named,
           "frozen": frozen_scores,
           "backbone": backbone, "seeds": seeds, "wall_seconds": round(wall, 1),
           "run_seconds": round(run_s, 1),
           "markdown": markdown}
    if out_dir is not None:
        ex.write_table(out_dir, f"probes_{stem}", out, markdown)
    return out
