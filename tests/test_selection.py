"""The chapter-1 scorers: shapes, determinism, exact formulas, registry and budget errors."""

import pytest
import torch

from unlearnkit import selection


def samples(n1=60, n2=80, d=4, shift=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X1 = torch.randn(n1, d, generator=gen, dtype=torch.float64) + shift
    X2 = torch.randn(n2, d, generator=gen, dtype=torch.float64) + 3.0
    return X1 + 3.0, X2


def test_registry_has_the_papers_scorers():
    assert set(selection.SCORERS) == {"RANDOM", "CORESET", "K-CENTER", "L2-NORM", "COS-MU2",
                                      "MAHA-MU2", "LR-COS", "LR-MAHA"}


@pytest.mark.parametrize("name", list(selection.SCORERS))
def test_every_scorer_is_finite_and_deterministic(name):
    X1, X2 = samples()
    scores = selection.score(name, X1, X2, seed=3)
    assert scores.shape == (len(X1),) and torch.isfinite(scores).all()
    assert torch.equal(scores, selection.score(name, X1, X2, seed=3))


def test_random_scores_follow_the_seed():
    X1, X2 = samples()
    assert not torch.equal(selection.score("RANDOM", X1, X2, seed=0), selection.score("RANDOM", X1, X2, seed=1))


def test_maha_mu2_matches_the_explicit_formula():
    X1, X2 = samples()
    centred = torch.cat([X1 - X1.mean(0), X2 - X2.mean(0)])
    cov = centred.T @ centred / (len(centred) - 2)
    cov = cov + 1e-3 * torch.diagonal(cov).mean() * torch.eye(4, dtype=torch.float64)
    diff = X1 - X2.mean(0)
    explicit = torch.einsum("ni,ij,nj->n", diff, torch.linalg.inv(cov), diff).sqrt()
    assert torch.allclose(selection.score("MAHA-MU2", X1, X2), explicit)


def correlation(a, b):
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_lr_maha_tracks_the_log_likelihood_ratio():
    X1, X2 = samples(n1=400, n2=400, d=5, shift=0.3)
    llr = X1 @ (X1.mean(0) - X2.mean(0))  # identity covariance: (μ1 − μ2)ᵀx + c
    assert correlation(selection.score("LR-MAHA", X1, X2), llr) > 0.9


def test_lr_cos_sees_angles_only():
    gen = torch.Generator().manual_seed(0)
    X2 = torch.randn(400, 2, generator=gen, dtype=torch.float64) * 0.3 + torch.tensor([5.0, 0.0], dtype=torch.float64)
    X1 = torch.randn(400, 2, generator=gen, dtype=torch.float64) * 0.3 + torch.tensor([5.0, 0.5], dtype=torch.float64)
    assert correlation(selection.score("LR-COS", X1, X2), X1[:, 1]) > 0.9  # angle away from μ2
    radial = X1 * 2.0  # same angles, other norms: cosine scores do not change
    assert torch.allclose(selection.score("LR-COS", radial, X2), selection.score("LR-COS", X1, X2), atol=1e-3)


def test_coreset_and_k_center_orders():
    X1, X2 = samples()
    nearest = int(torch.argmin(torch.linalg.vector_norm(X1 - X1.mean(0), dim=1)))
    assert int(torch.argmax(selection.score("CORESET", X1, X2))) == nearest
    order = selection.deletion_order(selection.score("K-CENTER", X1, X2))
    assert int(order[0]) == nearest
    assert int(order[1]) == int(torch.argmax(torch.linalg.vector_norm(X1 - X1[nearest], dim=1)))


def test_removal_mask_deletes_the_top_scores():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7])
    assert selection.removal_mask(scores, 0.5).tolist() == [True, False, True, False]
    assert selection.removal_mask(scores, 0.0).all()
    assert not selection.removal_mask(scores, 1.0).any()
    with pytest.raises(ValueError, match=r"budget=1.5 is out of range"):
        selection.removal_mask(scores, 1.5)


def test_bad_input_is_named():
    X1, X2 = samples()
    with pytest.raises(ValueError, match="unknown scorer 'MAHA'.*MAHA-MU2"):
        selection.score("MAHA", X1, X2)
    with pytest.raises(ValueError, match="same d"):
        selection.score("COS-MU2", X1, X2[:, :3])
    with pytest.raises(ValueError, match="already registered"):
        selection.register("RANDOM")(lambda X1, X2, seed=0: X1[:, 0])


def test_whiten_matches_a_linear_solve():
    X1, X2 = samples()
    chol = selection.pooled_cholesky(X1, X2)
    assert torch.allclose(selection.whiten(X1, chol), torch.linalg.solve(chol, X1.T).T)


def test_maha_mu2_in_float32_agrees_with_float64_despite_a_large_offset():
    gen = torch.Generator().manual_seed(0)
    X1 = torch.randn(2000, 64, generator=gen, dtype=torch.float64) + 5.0  # far from the origin
    X2 = torch.randn(500, 64, generator=gen, dtype=torch.float64) + 5.2
    exact = selection.score("MAHA-MU2", X1, X2)
    single = selection.score("MAHA-MU2", X1.float(), X2.float()).double()
    assert torch.allclose(single, exact, rtol=1e-4, atol=1e-3)
