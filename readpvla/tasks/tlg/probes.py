r"""Mechanism probes for TLG (issue 15): does PVLA align inside a trained model
(:func:`probe_alignment`), and does READ's recurrence inject clip order (:func:`probe_order`)?

PVLA's claim (Eq. 7-8): the partial transport plan between a block's clip states :math:`H_V`
and word states :math:`H_L` moves its mass along the pairs that belong together, so training
with it should pull the words towards the clips the query is about. The probe measures that
directly, in every block of a (trained) model, on a labelled split:

.. math:: \text{share}_q = \frac{\sum_{i \in \mathcal G_q} \sum_j T^{(m)}_{ij}}
          {\sum_{ij} T^{(m)}_{ij}}, \qquad
          \text{chance}_q = \frac{|\mathcal G_q|}{N_{V,q}}

with :math:`T^{(m)}` the partial Sinkhorn plan of block m (the training loss's cosine cost,
``mass``, ``tau``) and :math:`\mathcal G_q` the query's ground-truth clips (saliency > 0). A
plan that ignores the query puts ``chance`` of its mass there; ``lift = share / chance`` > 1
means the plan prefers the right clips. Compare a model trained with PVLA against the same
method trained without it (READ vs READ-PVLA) and against the frozen backbone (the control).

::

    from readpvla.tasks import tlg
    rec = tlg.run_one(backbone, "READ-PVLA", "dog", 0, return_model=True)
    probe = tlg.plan_mass_on_gt(rec["model"], tlg.dataset(root, "dog_test"))
    probe["blocks"][0]["share"], probe["blocks"][0]["chance"]
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from readpvla import experiment as ex
from readpvla import ot, peft
from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import TLGDataset

from .data import DOMAINS, batches, dataset, default_data_dir
from .evaluate import PLAIN_METRIC, TABLE_METRIC, TEMPORAL_METRIC, evaluate
from .loss import MASS, PVLA_MAX_ITER, PVLA_TOL, TAU, forward_batch
from .pretrain import default_checkpoint
from .rows import QUICK, TransferSettings

__all__ = ["ORDER_ROWS", "plan_mass_on_gt", "probe_alignment", "probe_order"]

#: the rows of the order probe: the recurrent adapter and two that act per token
ORDER_ROWS = ("Adapter", "READ", "LoRA")


@torch.no_grad()
def plan_mass_on_gt(model: nn.Module, dataset: TLGDataset, mass: float = MASS, tau: float = TAU,
                    max_iter: int = PVLA_MAX_ITER, tol: float = PVLA_TOL,
                    batch_size: int = 32) -> dict[str, Any]:
    """The share of each block's PVLA plan mass on the ground-truth clips (module docstring).

    Args:
        model: a TLG backbone whose output carries per-block ``h_v``, ``h_l``, ``mask_v``,
            ``mask_l`` (with or without an adapter; run in eval mode, left as it was).
        dataset: a labelled split (saliency marks the ground-truth clips).
        mass, tau, max_iter, tol: the plan's settings (default: the training loss's).
        batch_size: queries per forward pass.

    Returns:
        ``{"blocks": [{"block", "share", "chance", "lift", "per_item": {"share": [...],
        "chance": [...]}}], "n_queries", "mass", "tau"}``: per block the mean over queries of
        share and chance (percent), and ``lift`` = mean share / mean chance; per-item lists in
        the dataset's order, for paired comparisons.

    Raises:
        ValueError: an unlabelled split, an empty one, or a model output without blocks.
    """
    if not dataset.has_labels:
        raise ValueError(f"split {dataset.split!r} has no labels: the probe needs the "
                         "ground-truth clips")
    if len(dataset) == 0:
        raise ValueError(f"split {dataset.split!r} has no query")
    was = model.training
    model.eval()
    shares: list[list[float]] = []
    chances: list[float] = []
    try:
        dev = next(model.parameters()).device
        for batch in batches(dataset, batch_size):
            batch = batch.to(dev)
            out = forward_batch(model, batch)
            if not out.h_v or len(out.h_v) != len(out.h_l):
                raise ValueError("the model output carries no per-block (h_v, h_l) pairs")
            gt = (batch.saliency > 0) & batch.video_mask  # (B, Nv) the ground-truth clips
            n_clips = batch.video_mask.sum(1).clamp(min=1)
            chances += (100.0 * gt.sum(1) / n_clips).tolist()
            per_block = [ot.plan_share(h_v, h_l, gt[:, :, None], mass, tau, max_iter, tol,
                                       out.mask_v, out.mask_l).tolist()
                         for h_v, h_l in zip(out.h_v, out.h_l)]
            shares += [list(x) for x in zip(*per_block)]  # (B, M)
    finally:
        model.train(was)
    blocks = ot.summarize_shares(shares, chances, "block")
    return {"blocks": blocks, "n_queries": len(shares), "mass": mass, "tau": tau}


#: the probe table's control row: the frozen pretrained backbone, nothing trained
BACKBONE_ROW = "Backbone (frozen)"


def probe_alignment(backbone: str = "crossmodal", rows: Sequence[str] = ("READ", "READ-PVLA"),
                    domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                    out_dir: str | Path | None = None, *, settings: TransferSettings = QUICK,
                    data_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                    verbose: bool = False) -> dict[str, Any]:
    """"Does PVLA align?" as a table: each row trained as in Table 1
    (:func:`~.transfer.run_one`, same budget) on every domain and seed, then
    :func:`plan_mass_on_gt` on the domain's test split; plus the frozen backbone as the control.

    Columns: the plan's share of mass on the ground-truth clips per block (percent), the chance
    share, and MR-full-mAP; "Δ vs READ" (or vs the first row): a 95% paired bootstrap interval
    over test queries x seeds of the first block's share (:class:`readpvla.experiment.Delta`).
    With ``out_dir``, writes ``probe_alignment_<backbone>.{json,md}`` (checked writable first).
    Runs in this process, one after the other (36 runs of READ / READ-PVLA x 6 domains x 3 seeds
    take ~4 minutes on one core).
    """
    from .transfer import run_one

    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    if not rows or not seeds:
        raise ValueError("rows and seeds must not be empty")
    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise ValueError(f"unknown domain(s) {bad}; known: {list(DOMAINS)}")
    if out_dir is not None:
        out_dir = ex.check_writable(out_dir)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    model0 = load_backbone(checkpoint if checkpoint is not None else default_checkpoint(backbone))
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []

    def record(row: str, domain: str, seed: int, model: nn.Module, count: Any) -> None:
        test = dataset(root, f"{domain}_test")
        probe = plan_mass_on_gt(model, test, settings.mass, settings.tau, settings.max_iter,
                                settings.tol)
        metrics = {f"share_b{b['block']}": b["share"] for b in probe["blocks"]}
        metrics["chance"] = probe["blocks"][0]["chance"]
        metrics[TABLE_METRIC] = evaluate(model, test)[TABLE_METRIC]
        records.append({
            "row": row, "split": domain, "seed": seed, "test": metrics,
            "per_item": {f"share_b{b['block']}": b["per_item"]["share"]
                         for b in probe["blocks"]},
            "params": str(count), "trainable": count.trainable, "total": count.total})
        if verbose:
            print(f"{row:>18s} {domain:>8s} seed {seed}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in metrics.items()), flush=True)

    total = peft.count_parameters(model0).total
    for d in domains:
        for s in seeds:
            record(BACKBONE_ROW, d, s, model0, peft.ParamCount(0, total))
            for row in rows:
                rec = run_one(model0, row, d, s, settings, root, return_model=True)
                record(row, d, s, rec["model"], peft.count_parameters(rec["model"]))
    n_blocks = sum(k.startswith("share_b") for k in records[0]["test"])
    ref = "READ" if "READ" in rows else rows[0]
    spec = ex.TableSpec(
        title=f"Does PVLA align? Plan mass on the ground-truth clips ({backbone})",
        rows=tuple((r, r) for r in (BACKBONE_ROW, *rows)),
        columns=tuple([ex.Column(f"share, block {m}", "avg", f"share_b{m}")
                       for m in range(n_blocks)]
                      + [ex.Column("chance", "avg", "chance"),
                         ex.Column("Avg. MR-full-mAP", "avg", TABLE_METRIC)]),
        splits=tuple(domains), delta=ex.Delta(ref, "share, block 0"),
        note=(f"Share (%) of each block's partial transport plan (mass {settings.mass}, tau "
              f"{settings.tau}, the training loss's cosine cost) on the query's ground-truth "
              "clips (saliency > 0), test split of each domain, averaged over domains; "
              "chance = the ground-truth clips' share of the clips (a plan that ignores the "
              f"query); rows trained as Table 1 ({settings.epochs} epochs max, early stopping), "
              f"{BACKBONE_ROW} = the pretrained backbone untouched (the control); "
              + (f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}")
              + "."))
    summary = ex.summarize(records, spec, seeds)
    wall = time.perf_counter() - t0
    md = ex.format_table(summary, spec, spec.note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="tlg-probe",
                               backbone=backbone, settings=json.loads(json.dumps(
                                   settings.__dict__)), wall_seconds=round(wall, 1))
    if out_dir is not None:
        ex.write_table(out_dir, f"probe_alignment_{backbone}", payload, md)
    payload["markdown"] = md
    return payload


def _contrast(records: dict[str, list[dict[str, Any]]], row: str, ref: str, blind: str,
              aware: str, metric: str, seeds: Sequence[int]) -> ex.Interval:
    """The difference in differences ``(row - ref | blind) - (row - ref | aware)`` on ``metric``
    (:func:`readpvla.experiment.difference_in_differences`: a paired bootstrap over the test
    items x seeds; both backbones score the same items with the same seeds)."""
    return ex.difference_in_differences(records[blind], records[aware], row, ref, metric, seeds)


def probe_order(checkpoints: Mapping[str, str | Path], rows: Sequence[str] = ORDER_ROWS,
                domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                out_dir: str | Path | None = "runs/probe_order", *,
                settings: TransferSettings = QUICK, data_dir: str | Path | None = None,
                device: str | torch.device = "cpu", workers: int = 1, executor: str = "local",
                address: str | None = None, resume: bool = False, progress: bool = True
                ) -> dict[str, Any]:
    r"""Does READ's recurrence inject clip order? A controlled comparison on the queries that
    need order ("after" / "before", :data:`~.evaluate.TEMPORAL_METRIC`).

    READ's cell runs along the clips, so it sees their order; the Houlsby adapter and LoRA act
    on each token alone. On a backbone that sees clip order (the shipped one, sine positions on
    the clips) every method can use order; on an **order-blind** backbone (the same architecture
    pretrained with ``video_positions=False``: permuting the clips permutes every per-clip
    output, ``readpvla pretrain-tlg --no-video-positions``) only the recurrence can. If the
    recurrence injects order, READ's advantage over the per-token methods on temporal queries
    should grow when the backbone is blind:

    .. math:: \Delta\Delta = (\text{READ} - \text{Adapter})_{\text{blind}}
              - (\text{READ} - \text{Adapter})_{\text{aware}} > 0

    (also against LoRA), each with a 95% paired bootstrap interval over test queries x seeds;
    the same on plain queries is the check that the effect is about order.

    Args:
        checkpoints: ``{"aware": path, "blind": path}`` (crossmodal checkpoints; the names are
            the tables' labels; exactly two, the first order-aware, the second order-blind).
        rows: Table-1 rows to train on each backbone (must include ``"Adapter"``).
        domains, seeds, settings, data_dir, device, workers, executor, address, resume,
            progress: as :func:`~.transfer.run_transfer`.
        out_dir: where ``probe_order.{json,md}`` and the runs go (None: write nothing).

    Returns:
        ``{"tables": {name: payload}, "contrasts": {f"{row} - Adapter": {"temporal":
        interval, "plain": interval}}, "markdown": str}``.
    """
    from .transfer import _run, jobs

    names = list(checkpoints)
    if len(names) != 2:
        raise ValueError(f"checkpoints must name exactly two backbones (order-aware, then "
                         f"order-blind), got {names}")
    rows = list(rows)
    if "Adapter" not in rows or len(rows) < 2:
        raise ValueError(f"rows must include 'Adapter' and another row, got {rows}")
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    blind_cfg = json.loads((Path(checkpoints[names[1]]) / "config.json").read_text())
    if blind_cfg.get("config", {}).get("video_positions", True):
        raise ValueError(f"{checkpoints[names[1]]}: not an order-blind backbone (its config has "
                         "video_positions true); pretrain one with readpvla pretrain-tlg "
                         "--backbone crossmodal --no-video-positions")
    if out_dir is not None:
        out_dir = ex.check_writable(out_dir)
    records, tables, walls = {}, {}, {}
    for name in names:
        grid = jobs("crossmodal", rows, domains, seeds, settings, data_dir, checkpoints[name],
                    device)
        path = (out_dir / f"runs_probe_order_{name}.jsonl") if out_dir is not None else None
        records[name], walls[name] = _run(grid, path, executor, workers, address, resume,
                                          progress, False)
        spec = ex.TableSpec(
            title=f"Backbone {name}", rows=tuple((r, r) for r in rows),
            columns=(ex.Column("All queries", "avg", TABLE_METRIC),
                     ex.Column("Temporal", "avg", TEMPORAL_METRIC),
                     ex.Column("Plain", "avg", PLAIN_METRIC)),
            splits=tuple(domains), delta=ex.Delta("Adapter", "Temporal"))
        summary = ex.summarize(records[name], spec, seeds)
        tables[name] = ex.table_payload(spec, summary, records[name], seeds, task="tlg-probe",
                                        checkpoint=str(checkpoints[name]),
                                        wall_seconds=round(walls[name], 1))
        tables[name]["markdown"] = ex.format_table(summary, spec)
    contrasts = {}
    for row in rows:
        if row == "Adapter":
            continue
        contrasts[f"{row} - Adapter"] = {
            kind: _contrast(records, row, "Adapter", names[1], names[0], metric, seeds).as_dict()
            for kind, metric in (("temporal", TEMPORAL_METRIC), ("plain", PLAIN_METRIC))}
    lines = ["### Does recurrence inject order? (crossmodal, MR-full-mAP)", ""]
    for name in names:
        lines += [tables[name]["markdown"].replace("### ", "#### "), ""]
    lines += [f"#### Difference in differences: (row - Adapter | {names[1]}) - (row - Adapter | "
              f"{names[0]})", "", "| Row | Temporal queries | Plain queries |", "|---|---:|---:|"]
    for label, c in contrasts.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{c[k]['diff']:+.2f} [{c[k]['lo']:+.2f}, {c[k]['hi']:+.2f}]"
            for k in ("temporal", "plain")) + " |")
    lines += ["", f"{names[1]}: the crossmodal architecture pretrained without clip positions "
              "(order-blind); each row trained as Table 1 on every domain with seeds "
              f"{seeds}; 95% paired bootstrap intervals over test queries x seeds. A positive "
              "temporal contrast whose plain contrast holds 0 means the row carries order the "
              "blind backbone lacks."]
    md = "\n".join(lines) + "\n"
    out = {"tables": tables, "contrasts": contrasts, "domains": domains, "seeds": seeds,
           "checkpoints": {k: str(v) for k, v in checkpoints.items()}, "markdown": md}
    if out_dir is not None:
        ex.write_table(out_dir, "probe_order", out, md)
    return out
