"""Learning-rate schedules as the optimiser sees them, step by step (mnist_fc/optim.py)."""

import pytest
import torch

from mnist_fc.config import TrainConfig
from mnist_fc.optim import ONECYCLE_DEFAULT_RISE, build_scheduler


def _lrs(t: TrainConfig, steps_per_epoch: int = 1) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, t, steps_per_epoch=steps_per_epoch)
    out = []
    for _ in range(t.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _rise(lrs: list[float]) -> int:
    """Steps before the peak lr (1.0) is first reached."""
    return next(i for i, lr in enumerate(lrs) if lr == pytest.approx(1.0))


@pytest.mark.parametrize(("warmup", "steps_per_epoch", "rise"), [(0.4, 1, 1), (0.2, 2, 1), (2.5, 1, 3), (1.5, 2, 3)])
def test_a_short_onecycle_warm_up_is_one_step_not_the_30_percent_default(warmup, steps_per_epoch, rise):
    """round() made a warm-up under half a step 0 steps, which onecycle read as its default 30% rise (a full-batch
    trial of the accuracy space recorded ~0 warm-up and trained with a 3-epoch rise); halves rounded to even."""
    lrs = _lrs(TrainConfig(epochs=10, schedule="onecycle", warmup_epochs=warmup), steps_per_epoch)
    assert _rise(lrs) == rise
    default = _lrs(TrainConfig(epochs=10, schedule="onecycle"))
    assert _rise(default) == round(ONECYCLE_DEFAULT_RISE * 10)  # 0 still means the default


def test_a_short_cosine_warm_up_is_kept_not_dropped():
    with_warmup = _lrs(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=0.4))
    without = _lrs(TrainConfig(epochs=10, schedule="cosine"))
    assert with_warmup != without  # the decay starts one step later
    assert with_warmup[:2] == pytest.approx([1.0, 1.0]) and without[1] < 1.0
