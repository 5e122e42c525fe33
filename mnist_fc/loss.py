"""The full-batch training loss: mean cross-entropy, written as logsumexp - gather.

Why not `F.cross_entropy`: with only 10 classes its log_softmax kernel (and its backward) is slow on
CPU — 6 of ~77 ms of a bf16 article epoch (docs/speed.md section 2); logsumexp - gather computes the
same mean cross-entropy, within fp32 rounding, 8-9% faster per epoch. Computed in fp32 whatever the
logits' dtype (bf16 autocast gives bf16 logits), like the trainer's loss always was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def full_batch_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` (n, classes) against integer labels `y` (n,), in fp32.

    = F.cross_entropy(logits.float(), y) within fp32 rounding; logsumexp subtracts the row maximum,
    so extreme logits (e.g. +-80) neither overflow nor lose the result."""
    z = logits.float()
    return (z.logsumexp(1) - z.gather(1, y[:, None]).squeeze(1)).mean()


def full_batch_ce_members(logits: Sequence[torch.Tensor], y: torch.Tensor) -> list[torch.Tensor]:
    """`full_batch_ce` of each member's logits against the shared labels `y`, for a batch of trials.

    When all members' logits have one shape (always, for 10-class nets on one input) they are stacked
    and the loss runs once over (k, n, classes): a few kernels instead of a few per member, the same
    arithmetic per member (tests/mnist_fc/test_loss.py checks it bit for bit here)."""
    if len(logits) < 2 or len({tuple(z.shape) for z in logits}) > 1:
        return [full_batch_ce(z, y) for z in logits]
    z = torch.stack(list(logits)).float()  # (k, n, classes)
    labels = y.expand(len(logits), -1)[..., None]
    return list((z.logsumexp(2) - z.gather(2, labels).squeeze(2)).mean(1).unbind())
