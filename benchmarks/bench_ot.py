"""Benchmark readpvla.ot: the speed limit (vs POT and the mat-vec floor), iterations to tol,
envelope vs unroll.

The paper's setting: B = 32, N_V = 75, N_L = 32, d = 256, tau = 0.05, 1000 iterations.
Prints measured ratios (best of ``--repeats``) side by side from one run; it never asserts
timings. Section 1 times, at 1 and 2 torch threads and in float32 and float64: the mat-vec floor
(the iterations' two batched mat-vecs alone), our partial solver (plain and ``compile=True``)
against POT's ``entropic_partial_wasserstein`` looped over the batch, our balanced case against
POT's batched ``ot.solve_batch`` (same iterations; plans compared), and the log domain at a small
tau against the exp domain.

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


def row(*cells, widths=(40, 10, 10, 10, 16)):
    print("".join(str(c).ljust(w) for c, w in zip(cells, widths)))


def floor_time(C: torch.Tensor, n_iter: int, dev, reps: int) -> float:
    """The mat-vec floor: ``2 n_iter`` batched row-vector mat-vecs (``[B,1,M] @ [B,M,N]`` and
    ``[B,1,N] @ [B,N,M]``, the products an iteration needs) and nothing else."""
    K = torch.exp(-C)
    KT = K.transpose(1, 2).contiguous()
    v, w = torch.ones_like(K[:, :1, :]), torch.ones_like(KT[:, :1, :])

    def run():
        for _ in range(n_iter):
            torch.bmm(v, KT)
            torch.bmm(w, K)
    return best_time(run, dev, reps)


def speed_limit(args, dev, B, N, M, n_iter, tau, reps, n_pot, C64) -> None:
    """Section 1: every solver at ``n_iter`` fixed iterations (tol = 0), float32 and float64, 1 and
    2 threads, with the anchors (POT's loop, POT's ``ot.solve_batch``) and the mat-vec floor;
    plans compared to the anchors'."""
    print(f"\n## 1. the speed limit: {n_iter} iterations (tol = 0), best of {reps}; mass "
          f"{args.mass} for the partial rows, 1 for the balanced ones; small tau = {args.small_tau}")
    a, b = np.full(N, 1 / N), np.full(M, 1 / M)
    pot_loop, ref_loop = {}, {}
    if pot is not None:  # numpy, one item at a time: thread count does not matter, timed once
        for dt, name in ((np.float64, "float64"), (np.float32, "float32")):
            Cn = C64.cpu().numpy().astype(dt)

            def run_pot(Cn=Cn, dt=dt):
                return np.stack([pot.partial.entropic_partial_wasserstein(
                    a.astype(dt), b.astype(dt), Cn[k], tau, m=args.mass, numItermax=n_iter)
                    for k in range(n_pot)])
            pot_loop[name] = best_time(run_pot, torch.device("cpu"), reps) * B / n_pot
            ref_loop[name] = torch.from_numpy(run_pot().astype(np.float64))
    ratios = []
    for threads in args.thread_list:
        torch.set_num_threads(threads)
        for dt in (torch.float32, torch.float64):
            name = str(dt).removeprefix("torch.")
            C = C64.to(dt)
            print(f"\n### {threads} thread(s), {name}")
            row("solver", "ms", "x floor", "max|dT|", "vs anchor")
            t_floor = floor_time(C / tau, n_iter, dev, reps)
            row("mat-vec floor (2 bmm / iteration)", f"{t_floor * 1e3:.2f}", "1.00", "", "")
            t: dict[str, float] = {}

            def ours(label, mass, tau_=tau, dom="auto", compile_=False, ref=None, anchor=None,
                     C=C, t=t, t_floor=t_floor):
                def run():
                    return partial_sinkhorn(C, mass, tau_, n_iter, 0.0, domain=dom,
                                            compile=compile_)
                t[label] = best_time(run, dev, reps)
                T, info = run()
                err = (f"{float((T[:len(ref)].double().cpu() - ref).abs().max()):.1e}"
                       if ref is not None else "")
                vs = f"{anchor / t[label]:.1f}x faster" if anchor else ""
                row(label + f" [{info.domain}]", f"{t[label] * 1e3:.2f}",
                    f"{t[label] / t_floor:.2f}", err, vs)

            if pot is not None:
                row(f"POT entropic_partial loop ({'f64' if dt == torch.float64 else 'f32'})",
                    f"{pot_loop[name] * 1e3:.1f}", "", "0", "1.0x")
            ours("partial, exp", args.mass, ref=ref_loop.get(name), anchor=pot_loop.get(name))
            ours("partial, exp, compiled", args.mass, compile_=True, ref=ref_loop.get(name),
                 anchor=pot_loop.get(name))
            t_sb = None
            if pot is not None and hasattr(pot, "solve_batch"):
                def run_sb(method="sinkhorn", C=C):
                    return pot.solve_batch(C, tau, max_iter=n_iter, tol=0.0, method=method).plan
                t_sb = best_time(run_sb, dev, reps)
                ref_sb = run_sb().double().cpu()
                row("POT ot.solve_batch sinkhorn", f"{t_sb * 1e3:.2f}", f"{t_sb / t_floor:.2f}",
                    "0", "1.0x")
                t_sbl = best_time(lambda: run_sb("log_sinkhorn"), dev, reps)
                row("POT ot.solve_batch log_sinkhorn", f"{t_sbl * 1e3:.2f}",
                    f"{t_sbl / t_floor:.2f}", "", "")
            else:
                ref_sb = None
            ours("balanced (mass 1), exp", 1.0, ref=ref_sb, anchor=t_sb)
            ours("balanced (mass 1), exp, compiled", 1.0, compile_=True, ref=ref_sb, anchor=t_sb)
            ours("partial, log (stabilised)", args.mass, dom="log")
            ours(f"partial, log, tau={args.small_tau}", args.mass, tau_=args.small_tau, dom="log")
            ours(f"partial, logsumexp, tau={args.small_tau}", args.mass, tau_=args.small_tau,
                 dom="logsumexp")
            ratios.append((threads, name, pot_loop.get(name), t_sb, t_floor, t))
    print("\n### ratios (targets: partial >= 100x POT's loop; balanced >= 4x ot.solve_batch in "
          "float32; partial / floor <= 2; log (small tau) / exp <= 3)")
    row("threads, dtype", "partial/POT", "bal/solve_b", "part/floor", "log/exp", "bal/floor",
        widths=(18, 14, 14, 14, 14, 14))
    small = f"partial, log, tau={args.small_tau}"
    for threads, name, t_pot, t_sb, t_floor, t in ratios:
        best_p = min(t["partial, exp"], t["partial, exp, compiled"])
        best_b = min(t["balanced (mass 1), exp"], t["balanced (mass 1), exp, compiled"])
        row(f"{threads}, {name}", f"{t_pot / best_p:.1f}x" if t_pot else "-",
            f"{t_sb / best_b:.2f}x" if t_sb else "-", f"{best_p / t_floor:.2f}",
            f"{t[small] / t['partial, exp']:.2f}", f"{best_b / t_floor:.2f}",
            widths=(18, 14, 14, 14, 14, 14))
    print("(partial and balanced: the faster of the plain and the compiled loop; compilation "
          "itself is excluded, it happens in the warm-up call)")
    torch.set_num_threads(args.threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 = like POT's numpy loop; robust on busy machines)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--mass", type=float, default=0.5)
    ap.add_argument("--small-tau", type=float, default=1e-3,
                    help="the log domain's row: a tau where the exp domain underflows")
    ap.add_argument("--thread-list", type=int, nargs="+", default=[1, 2],
                    help="section 1 runs at each of these torch thread counts")
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
    print(f"# cosine costs in [{float(C64.min()):.3f}, {float(C64.max()):.3f}]")

    # ------------------------------------------------------------------ 1. the speed limit
    speed_limit(args, dev, B, N, M, n_iter, tau, reps, n_pot, C64)

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
