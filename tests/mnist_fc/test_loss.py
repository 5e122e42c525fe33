"""full_batch_ce (logsumexp - gather) must be F.cross_entropy within fp32 rounding, gradients too."""

import pytest
import torch
import torch.nn.functional as F

from mnist_fc.loss import full_batch_ce, full_batch_ce_members

EPS = torch.finfo(torch.float32).eps


def _tol(z: torch.Tensor) -> float:
    """fp32 rounding at the logits' magnitude: z - logsumexp(z) is exact only to a few ulps of max |z|
    (e.g. 80 + ln 10 is stored with an error of ~4e-6), whichever of the two formulas computes it."""
    return 8 * EPS * max(1.0, float(z.detach().abs().max()))


def _logits(n: int, classes: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g) * scale


def _labels(n: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed + 1))


@pytest.mark.parametrize(("n", "classes"), [(1, 10), (7, 3), (1000, 10), (4096, 10), (33, 2)])
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_equals_cross_entropy_with_gradients(n: int, classes: int, scale: float) -> None:
    z = _logits(n, classes, scale, seed=n + classes).requires_grad_()
    y = _labels(n, classes, seed=n)
    ours = full_batch_ce(z, y)
    (g_ours,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y)
    (g_ref,) = torch.autograd.grad(ref, z)
    assert ours.dtype == torch.float32 and ours.shape == ()
    torch.testing.assert_close(ours, ref, rtol=0, atol=_tol(z))
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=_tol(z) / n)  # d loss / dz = (softmax - onehot) / n


def test_extreme_logits_stay_finite_and_equal() -> None:
    """+-80: exp(80) overflows fp32's range only without the max subtraction; both must stay exact."""
    y = torch.tensor([0, 3, 9, 5, 1])
    z = torch.full((5, 10), -80.0)
    z[0, 0] = 80.0  # confidently right: loss ~ 0
    z[1, 4] = 80.0  # confidently wrong: loss ~ 160
    z[2] = 80.0  # all tied at the top: ln 10
    z[3, 5], z[3, 6] = 80.0, 80.0  # two-way tie with the label: ln 2
    z[4] = torch.linspace(-80, 80, 10)
    z.requires_grad_()
    ours = full_batch_ce(z, y)
    (g_ours,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y)
    (g_ref,) = torch.autograd.grad(ref, z)
    assert torch.isfinite(ours) and torch.isfinite(g_ours).all()
    torch.testing.assert_close(ours, ref, rtol=0, atol=_tol(z))
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=_tol(z) / len(y))
    # and per row, the values the cases are built for
    per_row = torch.stack([full_batch_ce(z[i : i + 1].detach(), y[i : i + 1]) for i in range(5)])
    expected = torch.tensor([0.0, 160.0, float(torch.log(torch.tensor(10.0))), float(torch.log(torch.tensor(2.0)))])
    torch.testing.assert_close(per_row[:4], expected, rtol=0, atol=_tol(z))


def test_bf16_logits_computed_in_fp32() -> None:
    """Autocast gives bf16 logits: the loss must be fp32 and equal F.cross_entropy(logits.float())."""
    zb = (_logits(2000, 10, 5.0, seed=3)).to(torch.bfloat16).requires_grad_()
    y = _labels(2000, 10, seed=3)
    ours = full_batch_ce(zb, y)
    (g_ours,) = torch.autograd.grad(ours, zb)
    ref = F.cross_entropy(zb.float(), y)
    (g_ref,) = torch.autograd.grad(ref, zb)
    assert ours.dtype == torch.float32 and g_ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, ref, rtol=0, atol=_tol(zb))
    # the gradient is cast back to bf16 (8 significant bits): equal up to one bf16 rounding
    bf16_ulp = torch.finfo(torch.bfloat16).eps
    torch.testing.assert_close(g_ours.float(), g_ref.float(), rtol=bf16_ulp, atol=_tol(zb) / len(y))
    # a bf16 loss (no fp32 upcast) would differ from the reference by far more than fp32 rounding
    assert (F.cross_entropy(zb, y).float() - ref).abs() > 10 * (ours - ref).abs()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_members_stacked_equal_each_member_alone_bit_for_bit(dtype: torch.dtype) -> None:
    """The batched loop's one stacked loss must be each member's own full_batch_ce, gradients too."""
    y = _labels(1000, 10, seed=7)
    zs = [(_logits(1000, 10, s, seed=i)).to(dtype).requires_grad_() for i, s in enumerate((0.1, 1.0, 80.0))]
    stacked = full_batch_ce_members(zs, y)
    g_stacked = torch.autograd.grad(torch.stack(stacked).sum(), zs)
    alone = [full_batch_ce(z, y) for z in zs]
    g_alone = torch.autograd.grad(torch.stack(alone).sum(), zs)
    assert len(stacked) == 3 and all(s.shape == () and s.dtype == torch.float32 for s in stacked)
    assert torch.equal(torch.stack(stacked), torch.stack(alone))
    assert all(torch.equal(a, b) for a, b in zip(g_stacked, g_alone, strict=True))


def test_members_of_different_shapes_fall_back_to_one_loss_each() -> None:
    zs = [_logits(50, 10, 1.0, seed=1), _logits(50, 3, 1.0, seed=2)]
    y = _labels(50, 3, seed=3)
    got = full_batch_ce_members(zs, y)
    assert [float(g) for g in got] == [float(full_batch_ce(z, y)) for z in zs]
    assert full_batch_ce_members([], y) == []
