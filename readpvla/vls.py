"""Video-language summarisation (VLS): pretrain VG-BART / VG-T5, then the low-resource transfer
of the READ-PVLA paper's Tables 4 and 5 over every fine-tuning method.

1. :func:`pretrain` trains a small VG-BART or VG-T5 on the synthetic How2-like *source* split
   (generated on the fly, :mod:`readpvla.data.how2`) and saves a safetensors checkpoint;
   ``data_samples/how2/checkpoints/vg_{bart,t5}`` hold the shipped ones.
2. :func:`run_transfer` loads that checkpoint, applies each method of :mod:`readpvla.peft` to a
   fresh copy, fine-tunes it on the low-resource *target* split (held-out tasks whose titles must
   be copied, a "first / then / finally" summary style, noisier video), writes summaries for the
   test split and scores them with ROUGE-1/2/L
   (:func:`readpvla.metrics.rouge.rouge_scores`). READ-PVLA adds ``lambda * L_PVLA`` between the
   video tokens and the transcript tokens of every encoder layer up to the fusion layer
   (:func:`readpvla.ot.pvla_loss`; paper Sec. 3.3). Results: JSON + a Markdown table shaped like
   Tables 4 / 5 (``#params (M) (%)``, R1, R2, RL as mean +/- std over seeds; ``‡`` where
   READ-PVLA's gain over the row is significant, one-sided Wilcoxon over test videos, p < 0.05).

``quick=True`` (the default: 60 steps, 50 test videos, greedy, seeds 0 and 1) runs both tables,
all nine methods, in about 3.5 minutes on two shared CPU cores (one torch thread; measured);
``quick=False`` is the full protocol (600 steps with early stopping on validation loss every 100,
beam search with 4 beams, all 200 test videos). Quick numbers are indicative only: 60 steps do
not let the small adapters converge.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readpvla.backbones.vg import VGT5, VGBart, VisionGuidedSeq2Seq
from readpvla.data.how2 import (
    How2Collator,
    How2Config,
    How2Sample,
    decode,
    generate_split,
    load_split,
    load_tokenizer,
)

__all__ = ["LEARNING_RATES", "METHODS", "PretrainConfig", "TrainConfig", "TransferConfig",
           "TransferData", "evaluate", "finetune", "format_table", "load_backbone",
           "load_transfer_data", "make_report", "method_config", "per_sample_rouge", "pretrain",
           "pvla_term", "run_transfer", "summarize", "transfer_run", "validation_loss"]

DATA_ROOT = Path(__file__).resolve().parents[1] / "data_samples" / "how2"
BACKBONES: dict[str, type[VisionGuidedSeq2Seq]] = {"bart": VGBart, "t5": VGT5}
#: the rows of Tables 4 / 5, in the paper's order (READ alone added before READ-PVLA)
METHODS = ("full", "partial", "bias", "proj", "lora", "prompt", "adapter", "read", "read-pvla")
LABELS = {"full": "Full", "partial": "Partial", "bias": "Bias", "proj": "Proj", "lora": "LoRA",
          "prompt": "Prompt", "adapter": "Adapter", "read": "READ", "read-pvla": "READ-PVLA"}
#: learning rates per method (AdamW): small for whole-layer updates, larger for small adapters
#: (picked per method from a 3-point grid by VG-BART validation loss after 150 steps; READ's
#: tanh-bounded recurrence needs a larger step than the Houlsby adapter to move W_up)
LEARNING_RATES = {"full": 1e-3, "partial": 3e-3, "bias": 3e-2, "proj": 3e-3, "lora": 1e-2,
                  "prompt": 1e-1, "adapter": 1e-2, "read": 3e-2, "read-pvla": 3e-2}


def checkpoint_path(backbone: str, root: str | Path = DATA_ROOT) -> Path:
    """Where the shipped checkpoint of ``"bart"`` / ``"t5"`` lives."""
    _backbone_class(backbone)
    return Path(root) / "checkpoints" / f"vg_{backbone}"


def _backbone_class(backbone: str) -> type[VisionGuidedSeq2Seq]:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    return BACKBONES[backbone]


def method_config(method: str, bottleneck: int = 4) -> Any:
    """The :mod:`readpvla.peft` config of a table row (``"read-pvla"`` is READ + the PVLA loss)."""
    import readpvla.peft as peft

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method in ("read", "read-pvla"):
        return peft.READConfig(bottleneck=bottleneck, cell="rnn")
    if method == "adapter":
        return peft.AdapterConfig(bottleneck=bottleneck)
    return peft.METHODS[method]()


# -- training --------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """One fine-tuning (or pretraining) run."""

    steps: int = 300  # optimiser steps
    batch_size: int = 16
    lr: float = 3e-3  # AdamW peak learning rate (linear warm-up, then linear decay to 0)
    weight_decay: float = 0.01
    warmup: int = 20  # warm-up steps
    max_grad_norm: float = 1.0
    eval_every: int = 0  # validation-loss period in steps (0: no early stopping)
    pvla_weight: float = 0.0  # lambda of L = L_task + lambda * L_PVLA (0: no PVLA)
    pvla_mass: float = 0.5  # transported mass m of the partial plan (DESIGN.md: a hyperparameter)
    pvla_tau: float = 0.05  # entropic temperature (paper: 0.05)
    pvla_iter: int = 1000  # Sinkhorn iterations (paper: 1000)
    pvla_layers: str = "all"  # "all" encoder layers up to the fusion layer, or "fusion" only
    time_limit_s: float | None = None  # stop early once this much wall time has passed

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.pvla_weight < 0:
            raise ValueError(f"pvla_weight must be >= 0, got {self.pvla_weight!r}")
        if self.pvla_layers not in ("all", "fusion"):
            raise ValueError(f"pvla_layers must be 'all' or 'fusion', got {self.pvla_layers!r}")


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    keys = ("input_ids", "attention_mask", "video", "video_mask", "labels")
    return {k: batch[k] for k in keys}


def pvla_term(out: Any, fusion_layer: int, cfg: TrainConfig) -> torch.Tensor:
    r"""The PVLA term of READ-PVLA's objective (paper Sec. 3.3, "loss at all blocks").

    .. math:: \mathcal L_{PVLA} = \frac{1}{f+1}\sum_{m=0}^{f}
              D_{POT}\big(H_V, H_L^{(m)}\big),\qquad
              \mathcal L = \mathcal L_{task} + \lambda\,\mathcal L_{PVLA}

    with :math:`D_{POT}` the entropic partial OT cost under cosine distance, uniform weights over
    the real tokens, transported mass ``cfg.pvla_mass``, temperature ``cfg.pvla_tau``
    (:func:`readpvla.ot.pvla_loss`, averaged over the batch). :math:`H_L^{(m)}` are the transcript
    tokens after encoder layer ``m < f`` (``out.h_l_layers[m]``) and, at the fusion layer ``f``,
    before the video is mixed in (``out.h_l``); :math:`H_V` are the projected clips ``out.h_v``
    at every layer (paper Eq. 4: :math:`H_V^{(m+1)} = H_V^{(m)}`). ``cfg.pvla_layers="fusion"``
    keeps only :math:`m = f`. Shapes: ``h_v [B, N_V, d]``, ``h_l [B, N_L, d]``; returns a scalar.
    """
    from readpvla.ot import pvla_loss

    h_ls = [out.h_l] if cfg.pvla_layers == "fusion" else [*out.h_l_layers[:fusion_layer], out.h_l]
    losses = [pvla_loss(out.h_v, h_l, out.mask_v, out.mask_l, mass=cfg.pvla_mass, tau=cfg.pvla_tau,
                        max_iter=cfg.pvla_iter) for h_l in h_ls]
    return torch.stack(losses).mean()


@torch.no_grad()
def validation_loss(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample],
                    collate: How2Collator, batch_size: int = 64) -> float:
    """Mean token cross-entropy of ``model`` on ``samples`` (teacher forcing, eval mode)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    try:
        for i in range(0, len(samples), batch_size):
            batch = _to(collate(samples[i: i + batch_size]), device)
            tokens = int((batch["labels"] != -100).sum())
            total += float(model(**_model_inputs(batch)).loss) * tokens
            n += tokens
    finally:
        model.train(was)
    return total / n


def finetune(model: VisionGuidedSeq2Seq, train: Sequence[How2Sample], collate: How2Collator,
             cfg: TrainConfig, seed: int = 0, val: Sequence[How2Sample] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the parameters of ``model`` that require grad (AdamW, linear warm-up and decay).

    Loss: token cross-entropy, plus ``cfg.pvla_weight * L_PVLA`` (:func:`pvla_term`) when that
    weight is > 0. With ``val`` and ``cfg.eval_every``, the trainable weights with the lowest
    validation loss are restored at the end (early stopping). Batches are drawn with a
    generator seeded by ``seed``. Returns a history dict (losses, best step, wall time).
    """
    if not train:
        raise ValueError("finetune needs at least one training sample")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameter: apply a readpvla.peft method first")
    device = params[0].device
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, min(cfg.warmup, cfg.steps // 2))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (cfg.steps - s) / max(1, cfg.steps - warm))))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    best = (math.inf, -1, None)
    hist: dict[str, Any] = {"loss": [], "pvla": [], "val_loss": []}
    model.train()
    t0 = time.perf_counter()
    order = rng.permutation(len(train))
    pos = 0
    for step in range(cfg.steps):
        if pos + cfg.batch_size > len(order):  # epoch boundary: reshuffle
            order, pos = rng.permutation(len(train)), 0
        idx = order[pos: pos + cfg.batch_size]
        pos += cfg.batch_size
        batch = _to(collate([train[i] for i in idx]), device)
        out = model(**_model_inputs(batch))
        loss = out.loss
        if cfg.pvla_weight > 0:
            l_pvla = pvla_term(out, model.fusion_layer, cfg)
            loss = loss + cfg.pvla_weight * l_pvla
            hist["pvla"].append(float(l_pvla.detach()))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        hist["loss"].append(float(out.loss.detach()))
        last = step == cfg.steps - 1
        out_of_time = cfg.time_limit_s is not None and time.perf_counter() - t0 > cfg.time_limit_s
        if val and cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or last or out_of_time):
            v = validation_loss(model, val, collate)
            hist["val_loss"].append((step + 1, v))
            if v < best[0]:
                best = (v, step + 1, {n: p.detach().clone() for n, p in named})
            if log:
                log(f"step {step + 1}: train loss {np.mean(hist['loss'][-cfg.eval_every:]):.4f}"
                    f"  val loss {v:.4f}")
        if out_of_time:
            break
    if best[2] is not None:
        with torch.no_grad():
            for n, p in named:
                p.copy_(best[2][n])
    hist.update(steps=len(hist["loss"]), best_step=best[1], best_val_loss=best[0],
                time_s=time.perf_counter() - t0)
    return hist


# -- evaluation ------------------------------------------------------------------------------


@torch.no_grad()
def summarize(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample], collate: How2Collator,
              batch_size: int = 50, num_beams: int = 4, max_new_tokens: int = 48) -> list[str]:
    """Generated summaries (text) for ``samples``."""
    device = next(model.parameters()).device
    preds: list[str] = []
    for i in range(0, len(samples), batch_size):
        b = _to(collate(samples[i: i + batch_size]), device)
        ids = model.generate(b["input_ids"], b["attention_mask"], b["video"], b["video_mask"],
                             num_beams=num_beams, max_new_tokens=max_new_tokens)
        preds += [decode(collate.tokenizer, row[1:]) for row in ids.cpu()]  # drop start token
    return preds


def per_sample_rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """ROUGE-1/2/L F-measures in percent, one per pair (the settings of ``rouge_scores``)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
    for p, r in zip(predictions, references):
        s = scorer.score(r, p)
        for k in out:
            out[k].append(100.0 * s[k].fmeasure)
    return out


def evaluate(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample], collate: How2Collator,
             num_beams: int = 4, max_new_tokens: int = 48, batch_size: int = 50) -> dict[str, Any]:
    """Summarise ``samples`` and score them: ``{"rouge1", "rouge2", "rougeL"}`` (percent,
    :func:`readpvla.metrics.rouge.rouge_scores`), plus ``predictions`` and ``per_sample``."""
    from readpvla.metrics.rouge import rouge_scores

    preds = summarize(model, samples, collate, batch_size, num_beams, max_new_tokens)
    refs = [s.summary for s in samples]
    scores = rouge_scores(preds, refs)
    return {"rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "rougeL": scores["rougeL"],
            "predictions": preds, "per_sample": per_sample_rouge(preds, refs)}


# -- pretraining -----------------------------------------------------------------------------


#: pretraining steps per backbone (T5's relative-position attention makes its steps ~1.6x slower)
PRETRAIN_STEPS = {"bart": 3000, "t5": 1800}


@dataclass
class PretrainConfig:
    """Size of the backbone and of its source-domain pretraining (defaults: the shipped ones)."""

    d_model: int = 64
    n_layers: int = 2  # encoder layers = decoder layers
    n_heads: int = 4
    ffn_dim: int = 256
    dropout: float = 0.1
    n_source: int = 20000  # source training videos (generated, not shipped)
    n_val: int = 200  # source validation videos (ROUGE reported on them)
    source_seed: int = 7
    steps: int | None = None  # None: PRETRAIN_STEPS[backbone] (sized for ~7 min on 2 CPU cores)
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 200
    time_limit_s: float = 480.0  # safety net: stop early to stay inside the ~10 min budget

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "ffn_dim", "n_source", "n_val",
                     "batch_size", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.steps is not None and (isinstance(self.steps, bool)
                                       or not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be None or a positive integer, got {self.steps!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be None or > 0, got {self.time_limit_s!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


def pretrain(backbone: str = "bart", out: str | Path | None = None,
             config: PretrainConfig | None = None, seed: int = 0, data_root: str | Path = DATA_ROOT,
             threads: int | None = None, device: str | torch.device = "cpu",
             log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Pretrain a small VG-BART / VG-T5 on the source split and save it (``readpvla pretrain-vls``).

    The source split (``config.n_source`` videos of the 18 source tasks) is generated in memory
    with :func:`readpvla.data.how2.generate_split`; the tokenizer is ``data_root/tokenizer.json``.
    All weights train (the text transformer, the video projection and the fusion). ROUGE on the
    source validation split (greedy decoding) is reported and stored in the checkpoint's
    ``config.json`` under ``"pretraining"``.

    Args:
        backbone: ``"bart"`` or ``"t5"``.
        out: checkpoint folder (default: ``data_root/checkpoints/vg_{backbone}``).
        config: sizes and budget (:class:`PretrainConfig`).
        seed: initialisation and batch-order seed.
        threads: ``torch.set_num_threads`` for the run (None: leave as is).

    Returns:
        ``{"checkpoint", "rouge1", "rouge2", "rougeL", "val_loss", "steps", "time_s", ...}``.
    """
    cls = _backbone_class(backbone)
    config = config or PretrainConfig()
    if threads is not None:
        torch.set_num_threads(threads)
    tok = load_tokenizer(Path(data_root) / "tokenizer.json")
    gen = How2Config()
    t0 = time.perf_counter()
    train = generate_split("source", config.n_source, config.source_seed, gen)
    val = generate_split("source", config.n_val, config.source_seed + 1, gen, prefix="source_val")
    torch.manual_seed(seed)
    model = cls.tiny(tok.get_vocab_size(), gen.video_dim, seed=seed, d_model=config.d_model,
                     n_layers=config.n_layers, n_heads=config.n_heads, ffn_dim=config.ffn_dim,
                     dropout=config.dropout).to(device)
    collate = How2Collator(tok)
    steps = config.steps or PRETRAIN_STEPS[backbone]
    tcfg = TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.lr,
                       warmup=config.warmup, eval_every=max(1, steps // 5),
                       time_limit_s=config.time_limit_s)
    hist = finetune(model, train, collate, tcfg, seed=seed, val=val[:100], log=log)
    model.eval()
    scores = evaluate(model, val, collate, num_beams=1)
    result = {"backbone": backbone, "rouge1": scores["rouge1"], "rouge2": scores["rouge2"],
              "rougeL": scores["rougeL"], "val_loss": hist["best_val_loss"],
              "steps": hist["steps"], "best_step": hist["best_step"],
              "time_s": time.perf_counter() - t0, "seed": seed, "config": asdict(config),
              "n_parameters": sum(p.numel() for p in model.parameters()),
              "example": {"reference": val[0].summary, "prediction": scores["predictions"][0]}}
    out = Path(out) if out is not None else checkpoint_path(backbone, data_root)
    model.cpu().save_checkpoint(out, tokenizer=tok, extra={"pretraining": result})
    result["checkpoint"] = str(out)
    if log:
        log(f"{cls.__name__}: R1 {result['rouge1']:.2f} R2 {result['rouge2']:.2f} "
            f"RL {result['rougeL']:.2f} on {len(val)} source val videos, {result['steps']} steps, "
            f"{result['time_s']:.0f}s -> {out}")
    return result


def load_backbone(backbone: str, data_root: str | Path = DATA_ROOT,
                  checkpoint: str | Path | None = None) -> tuple[VisionGuidedSeq2Seq, Any]:
    """The pretrained VG model and its tokenizer (the tokenizer is checked against it)."""
    _backbone_class(backbone)
    tok = load_tokenizer(Path(data_root) / "tokenizer.json")
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(backbone, data_root)
    model = BACKBONES[backbone].from_checkpoint(path, tokenizer=tok)
    return model, tok


# -- transfer (Tables 4 and 5) ---------------------------------------------------------------


@dataclass
class TransferConfig:
    """Budget of one transfer run (``quick()`` / ``full()`` give the two presets)."""

    n_train: int = 400  # low-resource training videos used (of 400 shipped)
    n_test: int = 200  # test videos summarised (of 200 shipped)
    n_val: int = 100  # validation videos for early stopping (0: none)
    steps: int = 600  # optimiser steps (batch 16: 24 epochs of 400 videos)
    batch_size: int = 16
    eval_every: int = 100  # validation-loss period (0: no early stopping)
    num_beams: int = 4  # beam search for the test summaries (1: greedy)
    bottleneck: int = 4  # k of READ / Adapter (paper: 4)
    pvla_weight: float = 1.0  # lambda of L_task + lambda * L_PVLA (READ-PVLA row only)
    pvla_mass: float = 0.5  # transported mass m
    pvla_iter: int = 1000  # Sinkhorn iteration cap (paper: 1000; stops at tol 1e-6 before)

    @classmethod
    def quick(cls) -> TransferConfig:
        """Small budget: every method on both backbones in a few minutes on 2 CPU cores."""
        return cls(n_train=400, n_test=50, n_val=0, steps=60, batch_size=16, eval_every=0,
                   num_beams=1)

    @classmethod
    def full(cls) -> TransferConfig:
        """The full protocol (roughly 30-60 min per backbone and 3 seeds on 2 CPU cores)."""
        return cls()


@dataclass
class TransferData:
    """What every run of one backbone shares: the pretrained model and the three splits."""

    base: VisionGuidedSeq2Seq
    collate: How2Collator
    train: list[How2Sample]
    val: list[How2Sample] | None
    test: list[How2Sample]


def load_transfer_data(backbone: str, config: TransferConfig, data_root: str | Path = DATA_ROOT,
                       checkpoint: str | Path | None = None,
                       device: str | torch.device = "cpu") -> TransferData:
    """Load the pretrained backbone (tokenizer-checked) and the low-resource splits."""
    base, tok = load_backbone(backbone, data_root, checkpoint)
    val = load_split(data_root, "val")[: config.n_val] if config.n_val else None
    return TransferData(base.to(device), How2Collator(tok),
                        load_split(data_root, "train")[: config.n_train], val,
                        load_split(data_root, "test")[: config.n_test])


def transfer_run(data: TransferData, method: str, seed: int, config: TransferConfig,
                 lr: float | None = None) -> dict[str, Any]:
    """One table cell sample: apply ``method`` to a copy of the backbone (under ``seed``),
    fine-tune, summarise the test split. Returns ROUGE, parameter counts, per-video scores."""
    import readpvla.peft as peft

    torch.manual_seed(seed)
    model = peft.apply(copy.deepcopy(data.base), method_config(method, config.bottleneck))
    params = peft.count_parameters(model)
    tcfg = TrainConfig(steps=config.steps, batch_size=config.batch_size,
                       lr=LEARNING_RATES[method] if lr is None else lr,
                       eval_every=config.eval_every,
                       pvla_weight=config.pvla_weight if method == "read-pvla" else 0.0,
                       pvla_mass=config.pvla_mass, pvla_iter=config.pvla_iter)
    hist = finetune(model, data.train, data.collate, tcfg, seed=seed, val=data.val)
    model.eval()
    ev = evaluate(model, data.test, data.collate, num_beams=config.num_beams)
    return {"method": method, "seed": seed, "lr": tcfg.lr, "rouge1": ev["rouge1"],
            "rouge2": ev["rouge2"], "rougeL": ev["rougeL"], "steps": hist["steps"],
            "best_step": hist["best_step"], "train_time_s": hist["time_s"],
            "final_loss": float(np.mean(hist["loss"][-10:])),
            "final_pvla": float(np.mean(hist["pvla"][-10:])) if hist["pvla"] else None,
            "params": {"trainable": params.trainable, "total": params.total,
                       "percent": params.percent, "cell": str(params)},
            "example": ev["predictions"][0], "per_sample": ev["per_sample"]}


def make_report(backbone: str, runs: Sequence[dict[str, Any]], config: TransferConfig,
                zero_shot: dict[str, float] | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Aggregate :func:`transfer_run` outputs into the Tables 4 / 5 report (JSON-ready, with
    ``"markdown"``): per method the mean and sample std (ddof=1) over seeds and the ``‡`` marks."""
    keys = ("rouge1", "rouge2", "rougeL")
    results: dict[str, Any] = {}
    for method in [m for m in METHODS if any(r["method"] == m for r in runs)]:
        rs = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        results[method] = {
            "label": LABELS[method], "params": rs[0]["params"],
            "runs": [{k: v for k, v in r.items() if k not in ("per_sample", "params")} for r in rs],
            "mean": {k: float(np.mean([r[k] for r in rs])) for k in keys},
            "std": {k: float(np.std([r[k] for r in rs], ddof=1)) if len(rs) > 1 else 0.0
                    for k in keys},
            "_per_sample": {k: np.mean([r["per_sample"][k] for r in rs], axis=0) for k in keys},
        }
    _significance(results)
    for r in results.values():
        r.pop("_per_sample")
    report = {"backbone": backbone, "model": BACKBONES[backbone].__name__,
              "seeds": sorted({r["seed"] for r in runs}), "settings": asdict(config),
              "zero_shot": zero_shot, "methods": results, **(extra or {})}
    report["markdown"] = format_table(report)
    return report


def run_transfer(backbone: str = "bart", methods: Sequence[str] = METHODS,
                 seeds: Sequence[int] = (0, 1), quick: bool = True,
                 out_dir: str | Path | None = None, config: TransferConfig | None = None,
                 data_root: str | Path = DATA_ROOT, checkpoint: str | Path | None = None,
                 learning_rates: dict[str, float] | None = None, threads: int | None = None,
                 device: str | torch.device = "cpu",
                 log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Low-resource VLS transfer of every method, as in Tables 4 (VG-BART) and 5 (VG-T5).

    For each method and seed (:func:`transfer_run`): a fresh copy of the pretrained backbone,
    ``rp.peft.apply`` under the seed, :func:`finetune` on the low-resource train split, summaries
    of the test split, ROUGE-1/2/L. ``read-pvla`` is READ plus ``config.pvla_weight * L_PVLA``.
    The pretrained backbone without any tuning is scored too (``"zero_shot"``).

    Args:
        backbone: ``"bart"`` or ``"t5"``.
        methods: rows to run (names of :data:`METHODS`).
        seeds: one run per seed; the table reports mean +/- std (sample std, ddof=1).
        quick: use :meth:`TransferConfig.quick`, else :meth:`TransferConfig.full` (ignored when
            ``config`` is given).
        out_dir: if set, writes ``vls_{backbone}.json`` and ``vls_{backbone}.md`` there.
        learning_rates: per-method overrides of :data:`LEARNING_RATES`.
        threads: ``torch.set_num_threads`` for the run (None: leave as is).

    Returns:
        ``{"backbone", "model", "seeds", "settings", "zero_shot", "methods": {name: {"label",
        "params", "runs", "mean", "std", "significant"}}, "learning_rates", "time_s",
        "markdown"}``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; expected a non-empty subset of {METHODS}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    config = config or (TransferConfig.quick() if quick else TransferConfig.full())
    lrs = {**LEARNING_RATES, **(learning_rates or {})}
    if out_dir is not None:
        from readpvla.tlg import check_writable

        check_writable(out_dir)  # before any work: the table must not be lost at the end
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    data = load_transfer_data(backbone, config, data_root, checkpoint, device)
    zs = evaluate(data.base.eval(), data.test, data.collate, num_beams=config.num_beams)
    runs = []
    for method in methods:
        for seed in seeds:
            r = transfer_run(data, method, seed, config, lrs[method])
            runs.append(r)
            if log:
                log(f"{backbone} {method:9s} seed {seed}: R1 {r['rouge1']:.2f} "
                    f"R2 {r['rouge2']:.2f} RL {r['rougeL']:.2f} ({r['train_time_s']:.1f}s train)")
    report = make_report(backbone, runs, config,
                         zero_shot={k: zs[k] for k in ("rouge1", "rouge2", "rougeL")},
                         extra={"quick": config == TransferConfig.quick(),
                                "learning_rates": {m: lrs[m] for m in methods},
                                "reference_example": data.test[0].summary,
                                "time_s": time.perf_counter() - t0})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"vls_{backbone}.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / f"vls_{backbone}.md").write_text(report["markdown"] + "\n")
    return report


def _significance(results: dict[str, Any], alpha: float = 0.05) -> None:
    """Mark rows READ-PVLA beats significantly (one-sided Wilcoxon signed-rank over test videos,
    per-video F averaged over seeds) — the paper's ``‡``."""
    from scipy.stats import wilcoxon

    ref = results.get("read-pvla")
    for name, r in results.items():
        r["significant"] = {}
        if ref is None or name == "read-pvla":
            continue
        for k, a in ref["_per_sample"].items():
            diff = np.asarray(a) - np.asarray(r["_per_sample"][k])
            if not np.any(diff != 0):
                r["significant"][k] = False
                continue
            p = wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue
            r["significant"][k] = bool(p < alpha)


def format_table(report: dict[str, Any]) -> str:
    """Markdown in the shape of Tables 4 / 5: Method | #params (M) | R1 | R2 | RL."""
    name = report.get("model", report.get("backbone", ""))
    n = len(report.get("seeds", []))
    lines = [f"VLS on synthetic How2 (low-resource target split) with {name}: ROUGE-1/2/L "
             f"({f'mean ± std over {n} seeds' if n > 1 else 'one seed'}), trainable #params (M) (%). "
             "‡: READ-PVLA's gain is significant at the 0.05 level.", "",
             "| Method | #params (M) | R1 | R2 | RL |", "|---|---|---|---|---|"]
    for r in report["methods"].values():
        cells = []
        for k in ("rouge1", "rouge2", "rougeL"):
            mark = " ‡" if r.get("significant", {}).get(k) else ""
            spread = f" ± {r['std'][k]:.2f}" if n > 1 else ""  # one seed has no spread
            cells.append(f"{r['mean'][k]:.2f}{spread}{mark}")
        lines.append(f"| {r['label']} | {r['params']['cell']} | " + " | ".join(cells) + " |")
    zs = report.get("zero_shot")
    if zs:
        lines += ["", f"Pretrained backbone without tuning: R1 {zs['rouge1']:.2f}, "
                  f"R2 {zs['rouge2']:.2f}, RL {zs['rougeL']:.2f}."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m readpvla.vls pretrain --backbone bart`` / ``transfer --backbone t5 --full``."""
    from readpvla import cli
    from readpvla.tlg import check_writable

    ap = cli.Parser(prog="python -m readpvla.vls", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=cli.Parser)
    p = sub.add_parser("pretrain", help="pretrain VG-BART / VG-T5 on the source split",
                       prog="readpvla pretrain-vls")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    p.add_argument("--out", default=None,
                   help="checkpoint folder (default runs/pretrain-vls/vg_BACKBONE; the shipped "
                        "one is data_samples/how2/checkpoints/vg_BACKBONE)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help="default: PRETRAIN_STEPS[backbone]")
    p.add_argument("--time-limit", type=cli.positive_float, default=PretrainConfig.time_limit_s)
    p.add_argument("--seed", type=cli.nonnegative_int, default=0)
    p.add_argument("--threads", type=cli.positive_int, default=None)
    p.add_argument("--device", type=cli.device, default="cpu")
    t = sub.add_parser("transfer", help="low-resource transfer over all methods (Tables 4/5)",
                       prog="readpvla transfer-vls")
    t.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    t.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    t.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1])
    t.add_argument("--full", action="store_true", help="the full protocol instead of quick")
    t.add_argument("--out-dir", default="runs/vls")
    t.add_argument("--threads", type=cli.positive_int, default=1,
                   help="torch threads (1: these tiny models gain little from more, and on a "
                        "busy machine oversubscribed threads are many times slower)")
    t.add_argument("--device", type=cli.device, default="cpu")
    a = ap.parse_args(argv)
    if a.cmd == "pretrain":
        out = Path(a.out) if a.out else Path("runs") / "pretrain-vls" / f"vg_{a.backbone}"
        cli.refuse_overwrite(out, "a checkpoint", a.overwrite, p)
        check_writable(out)  # before training, not after
        cfg = replace(PretrainConfig(), steps=a.steps, time_limit_s=a.time_limit)
        pretrain(a.backbone, out, cfg, seed=a.seed, threads=a.threads, device=a.device)
    else:
        check_writable(a.out_dir)
        rep = run_transfer(a.backbone, a.methods, a.seeds, quick=not a.full, out_dir=a.out_dir,
                           threads=a.threads, device=a.device)
        print(rep["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
