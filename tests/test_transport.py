"""POT-based transport distances: closed forms, limits, invariances and gradients."""

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from unlearnkit import transport


def _points(n, d=4, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_cosine_cost_matches_definition_and_ignores_scale():
    r, f = _points(5), _points(3, seed=1)
    cost = transport.cosine_cost(r, f)
    expected = torch.tensor([[max(0.0, 1 - float(a @ b / (a.norm() * b.norm()))) for b in f] for a in r],
                            dtype=torch.float64)
    assert torch.allclose(cost, expected, atol=1e-10)
    assert torch.allclose(transport.cosine_cost(3.0 * r, 0.5 * f), cost, atol=1e-10)
    assert (cost >= 0).all() and (cost <= 2).all()


def test_cosine_cost_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same D"):
        transport.cosine_cost(_points(3, d=4), _points(3, d=5))


def test_emd_cost_equals_assignment_for_equal_sizes():
    # With n = m and uniform weights the Kantorovich optimum is a permutation (Birkhoff).
    r, f = _points(6), _points(6, seed=3)
    cost = transport.cosine_cost(r, f)
    rows, cols = linear_sum_assignment(cost.numpy())
    assert transport.ot_distance(r, f, method="emd").item() == pytest.approx(cost.numpy()[rows, cols].mean(), abs=1e-10)


def test_emd_reaches_the_optimum_at_two_thousand_points():
    # POT's default pivot cap stops the network simplex short here (it warns, the cost is too high).
    r, f = _points(2048, d=10), _points(2048, d=10, seed=3) + 0.5
    cost = transport.cosine_cost(r, f)
    rows, cols = linear_sum_assignment(cost.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = transport.ot_distance(r, f, method="emd").item()
    assert ours == pytest.approx(cost.numpy()[rows, cols].mean(), abs=1e-9)


def test_identical_sets_are_at_distance_zero_and_emd_is_symmetric():
    r, f = _points(5), _points(5, seed=2)
    assert transport.ot_distance(r, r.clone(), method="emd").item() == pytest.approx(0.0, abs=1e-10)
    assert transport.ot_distance(r, f, method="emd").item() == pytest.approx(
        transport.ot_distance(f, r, method="emd").item(), abs=1e-10)


def test_sinkhorn_cost_tends_to_emd_cost_as_reg_shrinks():
    r, f = _points(7), _points(5, seed=4)
    exact = transport.ot_distance(r, f, method="emd").item()
    gaps = [transport.ot_distance(r, f, reg=reg, num_iter=20000).item() - exact for reg in (1.0, 0.1, 0.01, 0.002)]
    assert all(g >= -1e-6 for g in gaps)             # a feasible plan never beats the optimum
    assert gaps[0] > gaps[1] > gaps[2] >= gaps[3] - 1e-9
    assert gaps[-1] < 1e-3


def test_sinkhorn_plan_has_uniform_marginals_when_converged():
    cost = transport.cosine_cost(_points(4), _points(6, seed=5))
    plan = transport.sinkhorn_plan(cost, reg=0.05, num_iter=5000)
    assert torch.allclose(plan.sum(1), torch.full((4,), 0.25, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((6,), 1 / 6, dtype=torch.float64), atol=1e-6)


def test_gradients_flow_to_the_features_for_both_methods():
    f = _points(5, seed=6)
    for method in ("sinkhorn", "emd"):
        r = _points(5).requires_grad_(True)
        transport.ot_distance(r, f, method=method).backward()
        assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0


def test_emd_gradient_is_the_fixed_plan_gradient_and_sinkhorn_approaches_it():
    r0, f = _points(5), _points(5, seed=7)
    r = r0.clone().requires_grad_(True)
    transport.ot_distance(r, f, method="emd").backward()
    plan = transport.exact_plan(transport.cosine_cost(r0, f))
    r_fixed = r0.clone().requires_grad_(True)
    transport.transport_cost(plan, transport.cosine_cost(r_fixed, f)).backward()
    assert torch.allclose(r.grad, r_fixed.grad, atol=1e-10)
    errors = []
    for reg in (0.1, 0.003):
        r_s = r0.clone().requires_grad_(True)
        transport.ot_distance(r_s, f, reg=reg, num_iter=500).backward()
        errors.append(float((r_s.grad - r.grad).norm() / r.grad.norm()))
    assert errors[1] < 0.1 < errors[0]


def test_bad_arguments_raise():
    r = _points(3)
    with pytest.raises(ValueError, match="unknown OT method"):
        transport.ot_distance(r, r, method="greedy")
    with pytest.raises(ValueError, match="reg"):
        transport.ot_distance(r, r, reg=0.0)
    with pytest.raises(ValueError, match="num_iter"):
        transport.ot_distance(r, r, num_iter=0)
    with pytest.raises(ValueError, match="differ in shape"):
        transport.transport_cost(torch.ones(2, 3), torch.ones(3, 2))
