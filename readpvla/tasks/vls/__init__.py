"""Video-language summarisation (VLS): pretrain VG-BART / VG-T5, then the low-resource transfer
of the READ-PVLA paper's Tables 4 and 5 over every fine-tuning method.

::

    from readpvla.tasks import vls
    report = vls.run_transfer("bart", seeds=(0, 1), out_dir="runs/vls")   # vls_bart.{json,md}
    print(report["markdown"])

1. :func:`pretrain` trains a small VG-BART or VG-T5 on the synthetic How2-like *source* split
   (generated on the fly, :mod:`readpvla.data.how2`) and saves a safetensors checkpoint;
   ``data_samples/how2/checkpoints/vg_{bart,t5}`` hold the shipped ones.
2. :func:`run_transfer` applies each method of :mod:`readpvla.peft` to a fresh copy of that
   checkpoint, fine-tunes it on the low-resource *target* split (held-out tasks whose titles must
   be copied, a "first / then / finally" summary style, noisier video), writes summaries for the
   test split and scores them with ROUGE-1/2/L. READ-PVLA adds ``lambda * L_PVLA`` between the
   video tokens and the transcript tokens of every encoder layer up to the fusion layer
   (:func:`pvla_term`; paper Sec. 3.3). Results: JSON + a Markdown table shaped like Tables 4 / 5
   (``#params (M) (%)``, R1, R2, RL as mean ± std over seeds; "Δ vs READ-PVLA": the R1
   difference with a 95% paired bootstrap interval over test videos x seeds).

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data`, :mod:`.loss`,
:mod:`.evaluate`, :mod:`.pretrain`, :mod:`.rows`, :mod:`.transfer`, :mod:`.cli`; plus
:mod:`.tuning` (the equal-effort protocol) and :mod:`.probes` (issue 15's mechanism probes:
clip order, PVLA alignment, READ-PVLA's sensitivity; :func:`run_probes`).
"""

from .cli import main, pretrain_main, probe_main, transfer_main, tune_main
from .data import StepBatches, default_data_dir, model_inputs, to_device
from .evaluate import (
    METRICS,
    VIDEO_METRIC,
    evaluate,
    group_scores,
    per_sample_rouge,
    summarize,
    unnamed_steps,
    validation_loss,
    video_reliant,
    with_video_slice,
)
from .loss import PVLASettings, pvla_term, vls_loss
from .pretrain import (
    BACKBONES,
    DATA_ROOT,
    PRETRAIN_STEPS,
    PretrainConfig,
    backbone_class,
    checkpoint_path,
    load_backbone,
    pretrain,
)
from .probes import (
    NAMED_METRIC,
    ORDER_METRIC,
    PROBE_CONFIG,
    order_scores,
    plan_mass_on_steps,
    probe_metrics,
    probe_rows,
    run_probes,
    shuffle_clips,
    step_order,
)
from .rows import (
    LABELS,
    LEARNING_RATES,
    METHODS,
    TransferConfig,
    Variant,
    method_config,
    parse_row,
    parse_variant,
    row_label,
    sized_row,
)
from .transfer import (
    TrainConfig,
    TransferData,
    finetune,
    has_video_slice,
    jobs,
    load_transfer_data,
    retable_with_video,
    run,
    run_transfer,
    table_spec,
    transfer_run,
)
from .tuning import candidate_jobs, pareto, tune

__all__ = [
    "BACKBONES", "DATA_ROOT", "candidate_jobs", "pareto", "parse_row", "row_label", "sized_row",
    "tune", "LABELS", "LEARNING_RATES", "METHODS", "METRICS", "PRETRAIN_STEPS",
    "PVLASettings", "PretrainConfig", "StepBatches", "TrainConfig", "TransferConfig",
    "TransferData", "backbone_class", "checkpoint_path", "default_data_dir", "evaluate",
    "finetune", "jobs", "load_backbone", "load_transfer_data", "main", "method_config",
    "model_inputs", "per_sample_rouge", "pretrain", "pretrain_main", "pvla_term", "run",
    "run_transfer", "summarize", "table_spec", "to_device", "transfer_main", "transfer_run",
    "tune_main", "VIDEO_METRIC", "group_scores", "has_video_slice", "retable_with_video", "unnamed_steps",
    "validation_loss", "video_reliant", "vls_loss", "with_video_slice", "NAMED_METRIC",
    "ORDER_METRIC", "PROBE_CONFIG", "order_scores", "plan_mass_on_steps", "probe_metrics",
    "probe_main", "probe_rows", "run_probes", "shuffle_clips", "step_order", "Variant", "parse_variant",
]
