"""READ vs full fine-tuning on VG-BART / VG-T5: training-step time and generation speed.

Same CPU, same batch, interleaved rounds (the variants alternate in a shuffled order every round,
so load changes on a shared machine hit them alike); medians over rounds, printed as ratios.

- training step: forward + backward + AdamW step on a batch of target videos
  (Full: every weight; READ: only the adapters; READ-PVLA: READ + the PVLA loss).
- generation: greedy summaries of a batch; tokens/s counts generated tokens up to ``</s>``.
  Full decodes with a KV cache; READ cannot (its recurrence needs the whole prefix, so
  ``generate`` turns the cache off); "Full, no cache" separates the cache effect from READ's own.

    python benchmarks/bench_vls.py --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import torch

import readpvla as rp
from readpvla.data.how2 import EOS_ID, How2Collator, load_split
from readpvla.tasks.vls import DATA_ROOT, TrainConfig, load_backbone, method_config, pvla_term

KEYS = ("input_ids", "attention_mask", "video", "video_mask", "labels")


def _step(model, opt, batch, pvla: bool) -> float:
    t = time.perf_counter()
    out = model(**{k: batch[k] for k in KEYS})
    loss = out.loss + (pvla_term(out, model.fusion_layer, TrainConfig(pvla_weight=1.0).pvla()) if pvla else 0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def _generate(model, batch, use_cache: bool | None, max_new_tokens: int) -> tuple[float, int]:
    kw = {} if use_cache is None else {"use_cache": use_cache}
    t = time.perf_counter()
    ids = model.generate(batch["input_ids"], batch["attention_mask"], batch["video"],
                         batch["video_mask"], num_beams=1, max_new_tokens=max_new_tokens, **kw)
    dt = time.perf_counter() - t
    gen = ids[:, 1:]
    ended = (gen == EOS_ID).float().cumsum(1) > 0  # tokens after the first </s> do not count
    n = int((~ended).sum() + ended.any(1).sum())  # + the </s> itself
    return dt, n


def bench(backbone: str, rounds: int, batch_size: int, max_new_tokens: int, seed: int = 0) -> None:
    base, tok = load_backbone(backbone)
    batch = How2Collator(tok)(load_split(DATA_ROOT, "test")[:batch_size])
    models = {}
    for name, method in (("Full", "full"), ("READ", "read"), ("READ-PVLA", "read-pvla")):
        torch.manual_seed(seed)
        m = rp.peft.apply(copy.deepcopy(base), method_config(method))
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        models[name] = (m, opt, method == "read-pvla")
    steps = {k: [] for k in models}
    gens = {k: [] for k in ("Full", "Full, no cache", "READ")}
    rng = random.Random(seed)
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        order = list(models)
        rng.shuffle(order)
        for name in order:
            m, opt, pvla = models[name]
            m.train()
            dt = _step(m, opt, batch, pvla)
            if r:
                steps[name].append(dt)
        variants = [("Full", "Full", None), ("Full, no cache", "Full", False), ("READ", "READ", None)]
        rng.shuffle(variants)
        for label, name, cache in variants:
            dt, n = _generate(models[name][0], batch, cache, max_new_tokens)
            if r:
                gens[label].append(n / dt)
    step = {k: statistics.median(v) for k, v in steps.items()}
    tps = {k: statistics.median(v) for k, v in gens.items()}
    print(f"\n{type(base).__name__}: batch {batch_size}, {rounds} rounds, "
          f"{torch.get_num_threads()} threads")
    for k, v in step.items():
        print(f"  train step  {k:15s} {1000 * v:8.1f} ms   ratio to Full {v / step['Full']:.2f}")
    for k, v in tps.items():
        print(f"  generation  {k:15s} {v:8.1f} tok/s ratio to Full {v / tps['Full']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", nargs="+", default=["bart", "t5"], choices=["bart", "t5"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    for b in a.backbones:
        bench(b, a.rounds, a.batch, a.max_new_tokens)


if __name__ == "__main__":
    main()
