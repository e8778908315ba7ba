"""Optimal-transport distances between two batches of features, computed with POT.

DLFD (Choi & Na, 2025) measures how far the features of (perturbed) retain samples are from
the features of forget samples by the transport cost of an optimal coupling. With ``n`` rows
``r_i`` and ``m`` rows ``f_j`` and uniform weights ``a = 1/n``, ``b = 1/m``:

* cost matrix (cosine):   ``C_ij = max(0, 1 - cos(r_i, f_j))``  (values in ``[0, 2]``);
* Kantorovich problem:    ``π* = argmin_{π ∈ U(a, b)} <π, C>``,
  ``U(a, b) = {π ≥ 0 : π 1 = a, πᵀ 1 = b}`` — solved exactly by ``ot.emd``;
* entropic problem:       ``π_ε = argmin_{π ∈ U(a, b)} <π, C> − ε H(π)``,
  ``H(π) = −Σ π_ij (log π_ij − 1)``, whose solution is ``π_ε = diag(u) exp(−C/ε) diag(v)``;
  Sinkhorn's algorithm finds the scalings ``u, v`` by alternating marginal projections
  (``ot.sinkhorn(..., method="sinkhorn_log")`` runs them in the log domain, stable for
  small ``ε``);
* distance used by DLFD:  the transport cost ``<π, C> = Σ_ij π_ij C_ij`` of the plan — the
  linear part only, not the regularised objective ``<π, C> − ε H(π)``.

Every function takes and returns torch tensors; POT dispatches to its torch backend, so
gradients flow from the transport cost back to the features (through the Sinkhorn
iterations, or, for the exact plan, through ``C`` with the plan held fixed, which is the
envelope-theorem gradient of the optimal cost). No solver is written here.
"""

from __future__ import annotations

import ot
import torch
import torch.nn.functional as F

from .config import check_choice, check_range

OT_METHODS = ("sinkhorn", "emd")


def cosine_cost(r: torch.Tensor, f: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine cost matrix ``C_ij = max(0, 1 − cos(r_i, f_j))``.

    r: ``[n, D]``, f: ``[m, D]`` (features or logits; any positive rescaling of a row leaves
    ``C`` unchanged). Returns ``[n, m]`` in ``[0, 2]``, differentiable in both inputs.
    """
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"expected r [n, D] and f [m, D] with the same D; got {tuple(r.shape)} and {tuple(f.shape)}")
    cos = F.normalize(r, dim=1, eps=eps) @ F.normalize(f, dim=1, eps=eps).T
    return (1.0 - cos).clamp_min(0.0)


def uniform_weights(n: int, like: torch.Tensor) -> torch.Tensor:
    """The uniform histogram ``[n]`` (each entry ``1/n``) with ``like``'s dtype and device."""
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


def sinkhorn_plan(cost: torch.Tensor, reg: float = 0.01, num_iter: int = 50,
                  stop_threshold: float = 1e-9) -> torch.Tensor:
    """Entropic plan ``π_ε`` ``[n, m]`` between uniform marginals, by log-domain Sinkhorn (POT).

    ``reg`` is ``ε``; ``num_iter`` caps the iterations (DLFD's released code: ε = 0.01, 50
    iterations, usually not converged — the plan is then only approximately feasible).
    Differentiable in ``cost`` through the unrolled iterations.
    """
    check_range("reg", reg, 0.0, None, low_open=True)
    if not isinstance(num_iter, int) or isinstance(num_iter, bool) or num_iter < 1:
        raise ValueError(f"num_iter must be a positive int; got {num_iter!r}")
    n, m = cost.shape
    return ot.sinkhorn(uniform_weights(n, cost), uniform_weights(m, cost), cost, reg,
                       method="sinkhorn_log", numItermax=num_iter, stopThr=stop_threshold, warn=False)


def exact_plan(cost: torch.Tensor) -> torch.Tensor:
    """Exact Kantorovich plan ``π*`` ``[n, m]`` between uniform marginals (POT's network simplex).

    The plan carries no gradient (it is piecewise constant in ``cost``); the cost
    ``<π*, C>`` is still differentiable in ``C`` with ``π*`` fixed.
    """
    n, m = cost.shape
    # POT's default cap (1e5 pivots) stops short of optimality from about 2,000 points on.
    return ot.emd(uniform_weights(n, cost), uniform_weights(m, cost), cost, numItermax=max(100_000, 10 * n * m))


def transport_cost(plan: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """``<π, C> = Σ_ij π_ij C_ij``, a scalar tensor (the distance DLFD pushes up)."""
    if plan.shape != cost.shape:
        raise ValueError(f"plan {tuple(plan.shape)} and cost {tuple(cost.shape)} differ in shape")
    return (plan * cost).sum()


def ot_distance(r: torch.Tensor, f: torch.Tensor, *, method: str = "sinkhorn", reg: float = 0.01,
                num_iter: int = 50) -> torch.Tensor:
    """Transport cost between the empirical distributions of ``r`` ``[n, D]`` and ``f`` ``[m, D]``.

    ``method="sinkhorn"``: ``<π_ε, C>`` with the entropic plan (``reg``, ``num_iter``);
    ``method="emd"``: ``<π*, C>`` with the exact plan. ``C`` is :func:`cosine_cost`.
    Returns a scalar tensor; gradients flow to ``r`` and ``f`` when they require them.
    """
    check_choice("OT method", method, OT_METHODS)
    cost = cosine_cost(r, f)
    plan = sinkhorn_plan(cost, reg, num_iter) if method == "sinkhorn" else exact_plan(cost)
    return transport_cost(plan, cost)
