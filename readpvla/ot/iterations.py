r"""The inner loops of :func:`readpvla.ot.partial_sinkhorn`: Dykstra's updates in three domains.

Every domain runs the same block updates (see :mod:`readpvla.ot.partial`),

.. math::
    u \leftarrow \min\!\Big(\frac{a}{z\,Kv}, 1\Big),\qquad
    v \leftarrow \min\!\Big(\frac{b}{z\,K^\top u}, 1\Big),\qquad
    z \leftarrow \frac{m}{u^\top K v},

(no caps for balanced items), and stops **each item** at the first check (every ``check_every``
iterations) where its residual is ``<= tol``: a finished item's state is frozen, so an item's plan
never depends on the other items of the batch, and problems solved in one batched call (e.g. the
PVLA problems of every block of a step) get the plans of separate calls.

- ``exp``: scalings on the kernel :math:`K = e^{-(C - \min C)/\tau}`; an iteration is two batched
  row-vector mat-vecs and a few vector ops (the balanced case: two mat-vecs and two divisions).
- ``log`` (stabilised scaling, Schmitzer 2019, Alg. 2; in float64 whatever the cost's dtype): the
  same exp-domain iterations on the
  absorbed kernel :math:`\tilde K_{ij} = e^{\alpha_i + \beta_j - (C_{ij} - \min C)/\tau}` with
  scalings :math:`\tilde u = u e^{-\alpha}`, :math:`\tilde v = v e^{-\beta}` and caps
  :math:`e^{-\alpha}`, :math:`e^{-\beta}`; when a scaling leaves :math:`[e^{-\theta}, e^{\theta}]`
  it is absorbed into the log-potentials :math:`\alpha, \beta` and :math:`\tilde K` is recomputed
  (one ``exp`` over the batch). The iterates are the log domain's; the cost is the exp domain's
  plus the rare absorptions, whatever ``tau``.
- ``logsumexp``: the potentials :math:`f = \log u, g = \log v, h = \log z` updated with
  ``torch.logsumexp`` (the textbook log domain; slower, the reference for the other two).

References
----------
[1] Schmitzer (2019). Stabilized sparse scaling algorithms for entropy regularized transport
    problems. SIAM J. Sci. Comput. 41(3), A1443-A1481 (Algorithm 2, absorption).
[2] Benamou et al. (2015), Prop. 5 (Dykstra's iterations for the partial problem).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

__all__ = ["ABSORB", "dykstra_exp", "dykstra_logsumexp"]

#: largest ``|log u~|`` / ``|log v~|`` (stabilised domain, which runs in float64) before absorption:
#: kernel entries that carry plan mass stay above ``~1e-16 * e^{-2 theta}``, far from underflow
#: (1e-308). (float32's range, e^88, is too short: at ``tau = 1e-3`` a scaling moves by ~e^15 per
#: iteration, and measured runs overflowed the caps; the stabilised domain costs float64 mat-vecs.)
ABSORB = {torch.float64: 100.0}


class _GraphedChunk:
    """``k`` iterations replayed as one CUDA graph (the loop is launch-bound on GPUs).

    The first call runs the chunk eagerly on a side stream (the warm-up graphs need), then
    captures it; later calls replay it. State ``(v, z)`` lives in static buffers that the graph
    updates in place. Low-level capture API: ``torch.cuda.graph()`` would ``gc.collect()``.
    """

    def __init__(self, step, k: int):
        self.step, self.k, self.graph = step, k, None

    def _body(self):
        v, z = self.v, self.z
        for _ in range(self.k):
            w, v, z, ratio = self.step(v, z)
        self.v.copy_(v)
        self.z.copy_(z)
        return w, ratio

    def __call__(self, v, z):
        if self.graph is None:
            self.v, self.z = v.clone(), z.clone()
            side = torch.cuda.Stream(v.device)
            side.wait_stream(torch.cuda.current_stream(v.device))
            with torch.cuda.stream(side):
                w, ratio = self._body()  # real iterations, also the warm-up
                w, ratio = w.clone(), ratio.clone()
                self.graph = torch.cuda.CUDAGraph()
                self.graph.capture_begin()
                self.w, self.ratio = self._body()  # recorded, not run
                self.graph.capture_end()
            torch.cuda.current_stream(v.device).wait_stream(side)
            return w, self.v, self.z, ratio
        self.graph.replay()
        return self.w, self.v, self.z, self.ratio


class _Kernel:
    """The (absorbed) kernel of a batch and its caps; ``step(v, z)`` runs one iteration.

    ``alpha`` ``[B, N]``, ``beta`` ``[B, M]``, ``gamma`` ``[B]``: absorbed log-scalings of ``u``,
    ``v`` and ``z`` (None in the exp domain): ``K~ = e^{L + alpha + beta + gamma}``, and the
    updates keep their form in ``u~ = u e^{-alpha}``, ``v~ = v e^{-beta}``, ``z~ = z e^{-gamma}``.
    ``capu`` / ``capv``: caps of the scalings, ``[B, 1, 1]`` (exp domain: 1, or inf for balanced
    items) or ``[B, 1, N]`` / ``[B, 1, M]`` (stabilised: ``e^{-alpha}``, ``e^{-beta}``).
    """

    def __init__(self, L, a, b, m, balanced, alpha=None, beta=None, gamma=None):
        self.L, self.balanced = L, balanced  # (B, N, M) = -(C - min C) / tau, 0 on padding
        self.a, self.b, self.m = a[:, None, :], b[:, None, :], m[:, None, None]
        self.all_balanced = bool(balanced.all())
        self.stabilised = alpha is not None
        self.one = torch.ones_like(self.m)
        self.set(alpha, beta, gamma)

    def set(self, alpha, beta, gamma) -> None:
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        inf = torch.tensor(math.inf, dtype=self.L.dtype, device=self.L.device)
        bal = self.balanced[:, None, None]  # (B, 1, 1)
        if alpha is None:
            self.K = torch.exp(self.L)  # (B, N, M), max entry 1 per item
            cap = torch.where(bal, inf, 1.0).to(self.L.dtype)  # (B, 1, 1)
            self.capu = self.capv = cap
        else:
            # entries above e^600 sit in rows / columns that carry no mass (one that did would
            # have a scaling below e^-theta and be absorbed): the clamp keeps inf * 0 out.
            # Entries below e^-500 carry at most e^(2 theta - 500) of mass: zero, not left to
            # become subnormal products, which run ~5x slower on x86 (measured at tau = 1e-3)
            E = self.L + alpha[:, :, None] + beta[:, None, :] + gamma[:, None, None]
            self.K = torch.exp(E.clamp(max=600.0)).masked_fill(E < -500.0, 0.0)
            self.capu = torch.where(bal, inf, torch.exp(-alpha)[:, None, :])  # (B, 1, N)
            self.capv = torch.where(bal, inf, torch.exp(-beta)[:, None, :])  # (B, 1, M)
        self.KT = self.K.transpose(1, 2).contiguous()  # (B, M, N)
        # the loop body with the fewest ops for this batch (measured: each op ~1 us on a CPU)
        if self.all_balanced:
            self.kind = "balanced"
        elif not self.stabilised and not bool(self.balanced.any()):
            self.kind = "capped"
        else:
            self.kind = "general"
        self.tensors = (self.K, self.KT, self.a, self.b, self.m, self.capu, self.capv, self.one)

    def step(self, v, z):
        """One iteration: ``(v, z) -> (w, v, z, ratio)``, ``w = z u`` before the mass step."""
        return STEPS[self.kind](*self.tensors, v, z)

    def chunk(self, k: int, v, z, compiled: bool = False):
        """``k`` iterations, as one compiled function when ``compiled`` (see :func:`_chunk`)."""
        fn = _compiled(self.kind, k) if compiled else None
        if fn is None:
            return _chunk(STEPS[self.kind], k, *self.tensors, v, z)
        return fn(*self.tensors, v, z)

    def residual(self, uz, v, z, with_mass: bool = False):
        """Row + column residual ``[B]`` of the plan ``diag(uz) K diag(v)``: how far the next row
        and column projections would move its marginals (0 at the optimum). ``with_mass``: also
        ``|1'T1 - m|`` ``[B]`` from the same vectors (the stopping test counts it, as the reported
        violation does)."""
        Kv = torch.bmm(v, self.KT)  # (B, 1, N): row sums = uz * Kv
        KTuz = torch.bmm(uz, self.K)  # (B, 1, M): col sums = v * KTuz
        r = uz * Kv
        rows = (r - torch.minimum(self.a, z * Kv * self.capu)).abs().sum((1, 2))
        cols = (v * KTuz - torch.minimum(self.b, KTuz * self.capv)).abs().sum((1, 2))
        if with_mass:
            return rows + cols, (r.sum((1, 2)) - self.m[:, 0, 0]).abs()
        return rows + cols


def _step_balanced(K, KT, a, b, m, capu, capv, one, v, z):
    """Sinkhorn's scalings: ``u = a / Kv``, ``v = b / K'u`` (the mass step is the identity)."""
    w = a / torch.bmm(v, KT)  # (B, 1, N); bmm: matmul's dispatch costs ~30% here
    v = b / torch.bmm(w, K)  # (B, 1, M)
    return w, v, z, one


def _step_capped(K, KT, a, b, m, capu, capv, one, v, z):
    """Every item partial, caps 1: ``w = z u = min(a / Kv, z)``, ``v = min(b / K'w, 1)``,
    ``z <- m / (u'Kv)`` (= ``z m / (v . K'w)``)."""
    w = torch.minimum(a / torch.bmm(v, KT), z)  # (B, 1, N)
    KTw = torch.bmm(w, K)  # (B, 1, M)
    v = torch.clamp_max(b / KTw, 1.0)  # clamp_max: half of clamp(max=)'s time (measured)
    ratio = m / torch.bmm(v, KTw.transpose(1, 2))  # (B, 1, 1) = z_new / z
    return w, v, z * ratio, ratio


def _step_general(K, KT, a, b, m, capu, capv, one, v, z):
    """Caps per item (balanced items: inf) or per row / column (stabilised domain)."""
    w = torch.minimum(a / torch.bmm(v, KT), z * capu)  # (B, 1, N)
    KTw = torch.bmm(w, K)  # (B, 1, M)
    v = torch.minimum(b / KTw, capv)
    ratio = m / torch.bmm(v, KTw.transpose(1, 2))  # (B, 1, 1)
    return w, v, z * ratio, ratio


STEPS = {"balanced": _step_balanced, "capped": _step_capped, "general": _step_general}


def _chunk(step, k, K, KT, a, b, m, capu, capv, one, v, z):
    """``k`` iterations of ``step``."""
    for _ in range(k):
        w, v, z, ratio = step(K, KT, a, b, m, capu, capv, one, v, z)
    return w, v, z, ratio


_COMPILED: dict = {}


def _compiled(kind: str, k: int):
    """``k`` iterations of a step as one ``torch.compile``d function (TorchInductor fuses each
    iteration's vector ops around the two mat-vecs, and a chunk is one call instead of ~10 k
    Python-dispatched ops), or None where compiling fails (no C++ compiler, an unsupported
    platform): the caller then runs the plain loop, which gives the same plans. One warning per
    process says so. Compiled once per ``(kind, k)`` and shape (later shapes: dynamic)."""
    key = (kind, k)
    if key not in _COMPILED:
        step = STEPS[kind]

        def chunk(K, KT, a, b, m, capu, capv, one, v, z):
            return _chunk(step, k, K, KT, a, b, m, capu, capv, one, v, z)

        _COMPILED[key] = torch.compile(chunk, fullgraph=True)
    fn = _COMPILED[key]
    if fn is None:
        return None

    def guarded(*args):
        try:
            return fn(*args)
        except Exception as e:  # compiler missing or failing: fall back, say so once
            _COMPILED[key] = None
            first = str(e).splitlines()[0] if str(e) else ""
            warnings.warn(f"the Sinkhorn loop could not be compiled ({type(e).__name__}: "
                          f"{first}); running the plain loop, same plans", RuntimeWarning,
                          stacklevel=4)
            return _chunk(STEPS[kind], k, *args)

    return guarded


def _start(ker: _Kernel, ma: Tensor, mb: Tensor) -> tuple[Tensor, Tensor]:
    """POT's start ``v = 1`` (0 on padded columns), ``z = m / 1'K1`` over the real entries (the
    stabilised kernel starts with ``beta = gamma = 0``, so ``v~ = v``)."""
    v = mb.to(ker.L.dtype)[:, None, :]  # (B, 1, M)
    rows = ma[:, None, :] if not ker.stabilised else torch.exp(-ker.alpha)[:, None, :] * ma[:, None]
    total = (torch.bmm(v, ker.KT) * rows).sum(-1, keepdim=True)  # 1'K1 = sum_i e^-alpha_i K~_i. 1
    z = torch.where(ker.balanced[:, None, None], 1.0, ker.m / total)  # (B, 1, 1)
    return v, z


def _initial_potentials(L: Tensor, ma: Tensor, mb: Tensor) -> tuple[Tensor, Tensor]:
    """``alpha_i = -max_j L_ij`` over real entries (a c-transform: every row of the first absorbed
    kernel peaks at 1), ``beta = 0`` (so the loop starts at POT's ``v = 1``, as the other
    domains: same iterates)."""
    keep = ma[:, :, None] & mb[:, None, :]
    alpha = torch.where(ma, -L.masked_fill(~keep, -torch.inf).amax(2), 0.0)  # (B, N) >= 0
    alpha = torch.where(torch.isfinite(alpha), alpha, 0.0)
    return alpha, torch.zeros_like(L[:, 0, :])


def dykstra_exp(C, a, b, ma, mb, m, tau, balanced, cmin, max_iter, tol, check_every,
                cuda_graph=None, stabilised: bool = False, compile: bool = False):
    """Scaled (``stabilised=False``) or absorbed (``True``) domain; returns
    ``(plan, violation [B], iterations [B])``. See the module docstring. ``compile``: run chunks
    of iterations through ``torch.compile`` (not under autograd; falls back to the plain loop)."""
    dtype = C.dtype
    if stabilised:  # float64 always: float32's range (e^88) is too short for small tau's jumps
        C, a, b, m, cmin = (x.double() for x in (C, a, b, m, cmin))
    L = (cmin[:, None, None] - C) / tau  # (B, N, M) <= 0 on real entries, 0 on padding
    if stabilised:
        ker = _Kernel(L, a, b, m, balanced, *_initial_potentials(L, ma, mb), torch.zeros_like(m))
        theta = ABSORB[torch.float64]
    else:
        ker = _Kernel(L, a, b, m, balanced)
    v, z = _start(ker, ma, mb)
    graphs = (cuda_graph is not False and not stabilised and C.is_cuda
              and not (torch.is_grad_enabled() and C.requires_grad)
              and not torch.cuda.is_current_stream_capturing())
    # auto: graph only once a run has lasted 3 chunks, so short (converged) runs never pay capture
    graph_from = 0 if cuda_graph else 3 * check_every
    runner = _GraphedChunk(ker.step, check_every) if graphs else None
    compiled = bool(compile) and not graphs and not (torch.is_grad_enabled() and C.requires_grad)
    # one chunk of max_iter when nothing is checked; a compiled chunk stays check_every long
    # (a 1000-iteration graph takes minutes to compile, or fails)
    chunk = check_every if (tol > 0 or graphs or stabilised or compiled) else max_iter
    B = C.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=C.device)
    iters = torch.zeros(B, dtype=torch.long, device=C.device)
    out = None  # (uz, v, z, viol) of the frozen items
    n_iter = 0
    while n_iter < max_iter:
        k = min(chunk, max_iter - n_iter)
        if runner is not None and k == chunk and n_iter >= graph_from:
            w, v, z, ratio = runner(v, z)
        else:
            w, v, z, ratio = ker.chunk(k, v, z, compiled)
        n_iter += k
        iters = torch.where(done, iters, n_iter)
        if tol == 0 and not stabilised:
            continue
        uz = w * ratio  # (B, 1, N) = z * u after the mass step
        if tol > 0:  # freeze the items that have converged at this check
            viol, mass_err = ker.residual(uz, v, z, with_mass=True)
            new = (viol + mass_err <= tol) & ~done
            out = _freeze(out, new, uz, v, z, viol)
            done = done | new
        flags = [done.all()] if tol > 0 else [done.all()]
        if stabilised:
            ut, vt = uz / z, v  # the scalings u~, v~ (0 on padding and capped-out rows)
            big = torch.stack([_log_range(ut, ~done), _log_range(vt, ~done),
                               _log_range(z, ~done)]).amax()
            flags += [big > theta, ~torch.isfinite(uz).all() | ~torch.isfinite(v).all()]
        flags = torch.stack(flags).tolist()  # one host sync per check
        if flags[0] or (stabilised and flags[2]):
            break
        if stabilised and flags[1] and n_iter < max_iter:  # absorb u~, v~ into alpha, beta
            grow = ~done[:, None]
            la = torch.where(grow & (ut[:, 0] > 0), ut[:, 0].log(), 0.0)
            lb = torch.where(grow & (vt[:, 0] > 0), vt[:, 0].log(), 0.0)
            lz = torch.where(grow[:, 0], z.log().view(-1), 0.0)
            ker.set(ker.alpha + la, ker.beta + lb, ker.gamma + lz)
            v = torch.where(grow[:, :, None] & (v > 0), 1.0, v)
            z = torch.where(grow[:, :, None], 1.0, z)
    uz = w * ratio
    viol = ker.residual(uz, v, z)
    if out is not None:
        uz, v, z = (torch.where(done[:, None, None], o, x) for o, x in zip(out[:3], (uz, v, z)))
        viol = torch.where(done, out[3], viol)
    plan = uz.transpose(1, 2) * ker.K * v  # (B, N, M)
    return plan.to(dtype), viol.to(dtype), iters


def _log_range(x: Tensor, rows: Tensor) -> Tensor:
    """``max |log x|`` over the positive entries of the rows ``rows`` (0 if there are none)."""
    ok = (x > 0) & rows[:, None, None]
    return torch.where(ok, x.clamp_min(torch.finfo(x.dtype).tiny).log().abs(), 0.0).amax()


def _freeze(out, new, *state):
    """Keep the state of the items ``new`` (``[B]`` bool), frozen as they are now."""
    if out is None:
        return tuple(s.clone() for s in state)
    shape = lambda s: new.view(-1, *([1] * (s.ndim - 1)))  # noqa: E731
    return tuple(torch.where(shape(s), s, o) for s, o in zip(state, out))


def dykstra_logsumexp(C, a, b, ma, mb, m, tau, balanced, cmin, max_iter, tol, check_every):
    """Log domain: the same updates on potentials f, g <= 0, h with ``logsumexp``; stable for any
    tau. Returns ``(plan, violation [B], iterations [B])``."""
    L = (cmin[:, None, None] - C) / tau  # (B, N, M) <= 0: the shift leaves the plan unchanged
    la, lb, lm = a.log(), b.log(), m.log()[:, None]  # -inf on padding / zero weights
    g = torch.where(mb, 0.0, -math.inf).to(C.dtype)  # (B, M)
    h = lm - torch.logsumexp((L + g[:, None, :]).masked_fill(~ma[:, :, None], -math.inf),
                             (1, 2))[:, None]  # (B, 1) h0 = log m - log 1'K1
    cap = torch.where(balanced, math.inf, 0.0).to(C.dtype)[:, None]  # (B, 1) log-domain cap
    B = C.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=C.device)
    iters = torch.zeros(B, dtype=torch.long, device=C.device)
    out = None
    for it in range(1, max_iter + 1):
        rf = torch.logsumexp(L + g[:, None, :], 2)  # (B, N) log K e^g
        f = torch.minimum(la - h - rf, cap)
        cg = torch.logsumexp(L + f[:, :, None], 1)  # (B, M) log K' e^f
        g = torch.minimum(lb - h - cg, cap)
        h = lm - torch.logsumexp(g + cg, 1, keepdim=True)  # (B, 1)
        if tol > 0 and (it % check_every == 0 or it == max_iter):
            iters = torch.where(done, iters, it)
            viol, mass_err = _residual_log(L, f, g, h, cg, la, lb, cap, lm)
            new = (viol + mass_err <= tol) & ~done
            out = _freeze(out, new, f, g, h, cg, viol)
            done = done | new
            if bool(done.all()):
                break
    iters = torch.where(done, iters, it)
    viol = _residual_log(L, f, g, h, cg, la, lb, cap)
    if out is not None:
        f, g, h, cg = (torch.where(done.view(-1, *([1] * (x.ndim - 1))), o, x)
                       for o, x in zip(out[:4], (f, g, h, cg)))
        viol = torch.where(done, out[4], viol)
    plan = torch.exp(L + f[:, :, None] + g[:, None, :] + h[:, :, None])
    return plan, viol, iters


def _residual_log(L, f, g, h, cg, la, lb, cap, lm=None):
    """Row + column residual ``[B]`` of the plan, from its potentials; with ``lm`` (log m) also
    ``|1'T1 - m|`` ``[B]``."""
    s_r = h + torch.logsumexp(L + g[:, None, :], 2)  # (B, N) log(z K v): row sum = e^(f + s_r)
    s_c = h + cg  # (B, M) log(z K'u)
    r = torch.exp(f + s_r)
    rows = (r - torch.exp(torch.minimum(la, s_r + cap))).abs().sum(-1)
    cols = (torch.exp(g + s_c) - torch.exp(torch.minimum(lb, s_c + cap))).abs().sum(-1)
    if lm is not None:
        return rows + cols, (r.sum(-1) - lm[:, 0].exp()).abs()
    return rows + cols
