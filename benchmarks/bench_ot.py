"""Benchmark readpvla.ot: partial Sinkhorn vs POT, iterations to tol, envelope vs unroll.

The paper's setting: B = 32, N_V = 75, N_L = 32, d = 256, tau = 0.05, 1000 iterations.
Prints measured ratios (best of ``--repeats``); it never asserts timings.

    python benchmarks/bench_ot.py                 # CPU, full size
    python benchmarks/bench_ot.py --device cuda   # GPU (POT still runs on the CPU, if installed)
    python benchmarks/bench_ot.py --quick         # smoke run, seconds

Memory: on CUDA the peak allocated during forward+backward (above the inputs); on CPU the bytes
autograd saves for backward (unique storages, via ``saved_tensors_hooks``), the part that grows
with unrolled iterations.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from readpvla.ot import cosine_cost, partial_sinkhorn, pvla_loss

try:  # POT is a dependency of readpvla, but the GPU machine may lack it
    import ot as pot
except ImportError:  # pragma: no cover
    pot = None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def features(B, N, M, d, seed=0, device="cpu", dtype=torch.float32):
    """Video tokens, and language tokens that are noisy copies of some of them plus distractors,
    so the cosine costs (and the plan) have structure, as aligned features do."""
    g = torch.Generator().manual_seed(seed)
    h_v = torch.randn(B, N, d, generator=g)
    idx = torch.randint(0, N, (B, M), generator=g)
    h_l = torch.gather(h_v, 1, idx[..., None].expand(B, M, d)) + torch.randn(B, M, d, generator=g)
    h_l[:, M // 2:] = torch.randn(B, M - M // 2, d, generator=g)  # unrelated words
    return h_v.to(device, dtype), h_l.to(device, dtype)


def saved_bytes(fn) -> int:
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    out.backward()
    return sum(seen.values())


def row(*cells, widths=(34, 12, 12, 12, 14)):
    print("".join(str(c).ljust(w) for c, w in zip(cells, widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 = like POT's numpy loop; robust on busy machines)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--mass", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    B, N, M, d, n_iter, tau = (4, 20, 8, 32, 100, 0.05) if args.quick else (32, 75, 32, 256, 1000,
                                                                             0.05)
    reps = args.repeats or (1 if args.quick else 3)
    n_pot = B if args.quick else 8  # POT items timed; the total is scaled to B
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"# readpvla.ot benchmark on {name} ({args.threads} CPU thread(s)); B={B} N_V={N} "
          f"N_L={M} d={d} tau={tau} mass={args.mass} iterations={n_iter} torch={torch.__version__}")

    h_v, h_l = features(B, N, M, d, device=dev, dtype=torch.float64)
    C64 = cosine_cost(h_v, h_l)
    C32 = C64.float()
    print(f"# cosine costs in [{float(C64.min()):.3f}, {float(C64.max()):.3f}]")

    # ------------------------------------------------------------------ 1. forward vs POT
    print("\n## 1. forward: plan for the batch")
    row("solver", "seconds", "speed-up", "max|dT|", "iterations")
    ref = None
    t_pot = None
    if pot is not None:
        Cn = C64.cpu().numpy()
        a, b = np.full(N, 1 / N), np.full(M, 1 / M)

        def run_pot():
            return np.stack([pot.partial.entropic_partial_wasserstein(
                a, b, Cn[k], tau, m=args.mass, numItermax=n_iter) for k in range(n_pot)])

        t_pot = best_time(run_pot, torch.device("cpu"), reps) * B / n_pot
        ref = torch.from_numpy(run_pot())
        row("POT entropic_partial (f64, loop)", f"{t_pot:.4f}", "1.0", "0", n_iter)
    else:
        row("POT", "not installed", "", "", "")
    cases = [("ours f64, fixed iterations", C64, 0.0, "auto", None),
             ("ours f32, fixed iterations", C32, 0.0, "auto", None),
             ("ours f64, tol 1e-6", C64, 1e-6, "auto", None),
             ("ours f32, tol 1e-6", C32, 1e-6, "auto", None),
             ("ours f64, log domain, fixed", C64, 0.0, "log", None),
             ("ours f32, log domain, fixed", C32, 0.0, "log", None)]
    if dev.type == "cuda":
        cases.insert(2, ("ours f32, fixed, no CUDA graph", C32, 0.0, "auto", False))
    for label, C, tol, dom, graph in cases:
        def run(C=C, tol=tol, dom=dom, graph=graph):
            return partial_sinkhorn(C, args.mass, tau, n_iter, tol, domain=dom, cuda_graph=graph)

        t = best_time(run, dev, reps)
        T, info = run()
        err = (float((T[:n_pot].double().cpu() - ref).abs().max()) if ref is not None else
               float("nan"))
        speed = f"{t_pot / t:.1f}" if t_pot else "-"
        row(label, f"{t:.4f}", speed, f"{err:.1e}", info.n_iter)

    # ------------------------------------------------------------------ 2. iterations to tol
    print("\n## 2. iterations to reach tol = 1e-6 (checked every iteration), float64")
    row("mass", "iterations", "converged", "max viol", "max|T-T_1000|")
    for mass in (0.2, 0.5, 0.8, 1.0):
        T, info = partial_sinkhorn(C64, mass, tau, n_iter, 1e-6, check_every=1)
        Tf, info_f = partial_sinkhorn(C64, mass, tau, n_iter, 0.0)
        per_item = [partial_sinkhorn(C64[k], mass, tau, n_iter, 1e-6, check_every=1)[1].n_iter
                    for k in range(min(B, 8))]
        conv = f"{int(info.converged.sum())}/{B}"
        row(f"{mass} (items: {min(per_item)}-{max(per_item)})", info.n_iter, conv,
            f"{float(info.violation.max()):.1e}", f"{float((T - Tf).abs().max()):.1e}")
        if mass == args.mass:
            print(f"   fixed {n_iter} iterations: max violation {float(info_f.violation.max()):.1e}")

    # ------------------------------------------------------------------ 3. envelope vs unroll
    print("\n## 3. PVLA loss forward+backward (float32): envelope vs unroll")
    mem_label = "peak MiB" if dev.type == "cuda" else "saved MiB"
    row("grad / iterations", "seconds", mem_label, "grad diff", "")
    hv, hl = features(B, N, M, d, device=dev, dtype=torch.float32)
    for iters in ((10, 50, 100) if args.quick else (10, 100, 1000)):
        grads = {}
        for grad in ("envelope", "unroll"):
            x = hv.clone().requires_grad_()

            def step(x=x, grad=grad, iters=iters):
                x.grad = None
                return pvla_loss(x, hl, mass=args.mass, tau=tau, max_iter=iters, tol=0.0,
                                 grad=grad)

            t = best_time(lambda step=step: step().backward(), dev, reps)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
                base = torch.cuda.memory_allocated(dev)
                step().backward()
                mem = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
            else:
                mem = saved_bytes(step) / 2**20
            grads[grad] = x.grad.clone()
            row(f"{grad} / {iters}", f"{t:.4f}", f"{mem:.2f}", "", "")
        diff = float((grads["envelope"] - grads["unroll"]).abs().max())
        scale = float(grads["unroll"].abs().max())
        print(f"   max |grad_envelope - grad_unroll| = {diff:.2e} (max |grad| {scale:.2e})")


if __name__ == "__main__":
    main()
