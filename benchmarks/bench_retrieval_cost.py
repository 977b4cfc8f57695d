"""Cost of one retrieval training step per PEFT method: trainable parameters, training memory,
step time and FLOPs, with every ratio to Full, from one run (the paper's efficiency columns).

Same batch for every method: ``--videos`` videos x their frames from the rendered ``flat`` test
split and one caption each, through the shipped ``frames`` video CLIP
(:func:`readpvla.tasks.retrieval.load`); methods Full, LoRA, Adapter, READ and RAP (RAP only when
``readpvla.peft.METHODS`` has it), each applied to its own copy of the backbone, trained with the
task's loss (symmetric InfoNCE) and AdamW.

- **Params**: ``count_parameters`` (the tables' "#params (M)" cell) and the trainable weights'
  size in MB at float32 (4 bytes each, the paper's "Params (MB)").
- **Memory**: the bytes one training step keeps alive beyond the frozen weights, counted exactly
  (no allocator sampling, so it is the same on every run): the tensors autograd saves for the
  backward pass (``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters
  excluded) + the trainable parameters' gradients + AdamW's two moment buffers. It is where PEFT
  methods differ; the frozen weights (the same for all) and transient buffers are not counted.
  On CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) is printed beside it.
- **Step time**: median over ``--steps`` timed steps (forward, backward, AdamW step) after
  ``--warmup`` untimed ones, the methods interleaved round-robin in this one process so machine
  noise hits them alike.
- **FLOPs**: one forward + backward counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matrix products and attention; elementwise ops are not counted).

Prints a table; asserts nothing.

    python benchmarks/bench_retrieval_cost.py [--videos 16] [--steps 3] [--warmup 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import torch

import readpvla as rp
from readpvla.tasks import retrieval

METHODS = ("Full", "LoRA", "Adapter", "READ", "RAP")


def _configs() -> dict[str, Any]:
    out = {}
    for label in METHODS:
        if label == "RAP" and "rap" not in rp.peft.METHODS:
            continue
        out[label] = retrieval.ROWS[label].config()
    return out


def _batch(model: torch.nn.Module, videos: int, frames: int | None, tiny: bool,
           device: str) -> dict[str, torch.Tensor]:
    data = retrieval.dataset("flat_test")
    x = retrieval.frames_tensor(data, range(videos))  # (B, T, 3, H, W)
    if frames is not None:
        x = x[:, :frames]
    if tiny:  # the tiny model's 16 px frames
        x = torch.nn.functional.interpolate(x.flatten(0, 1), size=16).unflatten(0, x.shape[:2])
    caps = [data.captions[data.captions_of(i)[0]] for i in range(videos)]
    tok = model.tokenize(caps)
    return {"frames": x.to(device), "input_ids": tok["input_ids"].to(device),
            "attention_mask": tok["attention_mask"].to(device)}


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict) -> None:
    loss, _ = retrieval.retrieval_loss(model, batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _memory(model: torch.nn.Module, batch: dict) -> int:
    """Bytes one training step keeps beyond the frozen weights (module docstring)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = retrieval.retrieval_loss(model, batch)
    loss.backward()
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    model.zero_grad(set_to_none=True)
    return sum(saved.values()) + trainable * 3  # activations + gradients + AdamW's 2 moments


def _flops(model: torch.nn.Module, batch: dict, label: str) -> float:
    """FLOPs of one forward + backward (NaN, with the reason printed, if the counter fails)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as fc:
            loss, _ = retrieval.retrieval_loss(model, batch)
            loss.backward()
    except Exception as e:  # the counter's module hooks can trip over a method's code
        print(f"{label}: FLOPs not counted ({type(e).__name__}: {e})")
        return float("nan")
    finally:
        model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--frames", type=int, default=None, help="first N frames (default all 8)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per method")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true",
                    help="VideoCLIP.tiny() (random, MiniLM text) instead of the shipped model: "
                         "for a quick check that the script runs")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    torch.manual_seed(0)
    if a.tiny:
        from readpvla.backbones.video_clip import VideoCLIP

        backbone = VideoCLIP.tiny(temporal="frames", num_frames=8, text="minilm")
    else:
        backbone = retrieval.load("frames")
    batch = _batch(backbone, a.videos, a.frames, a.tiny, a.device)
    configs = _configs()
    if "RAP" not in configs:
        print("RAP: not available (readpvla.peft.METHODS has no 'rap')")
    models, opts, rows = {}, {}, {}
    for label, cfg in configs.items():
        torch.manual_seed(0)
        m = rp.peft.apply(copy.deepcopy(backbone), cfg).to(a.device).train()
        hp = retrieval.HPARAMS[retrieval.row_key(retrieval.ROWS[label])]
        models[label] = m
        opts[label] = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad],
                                        lr=hp["lr"], weight_decay=hp["weight_decay"])
        count = rp.peft.count_parameters(m)
        rows[label] = {"method": label, "params": str(count), "trainable": count.trainable,
                       "params_mb": count.trainable * 4 / 2 ** 20,
                       "memory_mb": _memory(m, batch) / 2 ** 20,
                       "gflops": _flops(m, batch, label) / 1e9, "times": []}
    for _ in range(a.warmup):
        for label, m in models.items():
            _step(m, opts[label], batch)
    cuda = str(a.device).startswith("cuda")
    for _ in range(a.steps):  # interleaved: one step of each method per round
        for label, m in models.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            _step(m, opts[label], batch)
            if cuda:
                torch.cuda.synchronize()
                rows[label]["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
            rows[label]["times"].append(time.perf_counter() - t0)
    full = rows.get("Full")
    shape = tuple(batch["frames"].shape)
    print(f"\nOne training step, batch {shape[0]} videos x {shape[1]} frames "
          f"({shape[3]} px) + {shape[0]} captions, {a.device}, threads "
          f"{torch.get_num_threads()}; step time: median of {a.steps} after {a.warmup} warm-up "
          "(interleaved); memory: saved activations + gradients + AdamW state (exact count)")
    head = (f"{'method':>8s} | {'#params (M) (%)':>16s} | {'Params MB':>9s} | {'x Full':>6s} | "
            f"{'memory MB':>9s} | {'x Full':>6s} | {'step s':>7s} | {'x Full':>6s} | "
            f"{'GFLOPs':>8s} | {'x Full':>6s}")
    print(head + (" | CUDA peak MB" if cuda else ""))
    print("-" * len(head))
    for r in rows.values():
        r["step_s"] = statistics.median(r["times"]) if r["times"] else float("nan")

        def ratio(key: str, r: dict = r) -> str:
            return f"{r[key] / full[key]:6.3f}" if full and full[key] else f"{'-':>6s}"

        line = (f"{r['method']:>8s} | {r['params']:>16s} | {r['params_mb']:9.3f} | "
                f"{ratio('params_mb')} | {r['memory_mb']:9.2f} | {ratio('memory_mb')} | "
                f"{r['step_s']:7.3f} | {ratio('step_s')} | {r['gflops']:8.2f} | "
                f"{ratio('gflops')}")
        print(line + (f" | {r.get('cuda_peak_mb', float('nan')):.1f}" if cuda else ""))
    print(f"\nwall time {time.perf_counter() - t_start:.1f} s")
    return list(rows.values())


if __name__ == "__main__":
    main()
