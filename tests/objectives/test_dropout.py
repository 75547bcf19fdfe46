"""The MLP's dropout: a Bernoulli(1 - p) keep mask, fresh each step, scaled by 1/(1 - p)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hpsearch.objectives._data import Splits
from hpsearch.objectives._mnist import Dropout, build_mlp, keep_below
from hpsearch.objectives._train import FitConfig, make_optimizer, train_epoch

N = 400_000  # units per mask: a keep rate's standard error is at most 0.0008
Z = 5  # standard errors: a false alarm about once in 1.7 million runs


def kept(drop: nn.Module, shape: tuple[int, ...] = (N // 500, 500)) -> torch.Tensor:
    """Which units of a batch of ones the layer keeps (as 0/1 floats)."""
    return (drop(torch.ones(shape)) != 0).float()


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_the_keep_rate_is_one_minus_p(p: float) -> None:
    torch.manual_seed(0)
    rate = kept(Dropout(p)).mean().item()
    assert abs(rate - (1 - p)) < Z * math.sqrt(p * (1 - p) / N)


def test_masks_of_consecutive_steps_are_independent() -> None:
    torch.manual_seed(1)
    drop = Dropout(0.3)
    first, second = kept(drop).flatten(), kept(drop).flatten()
    assert not torch.equal(first, second)
    # Independent Bernoulli(0.7) masks: both kept with probability 0.49, correlation 0.
    assert abs((first * second).mean().item() - 0.49) < Z * math.sqrt(0.49 * 0.51 / N)
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < Z / math.sqrt(N)


def test_neighbouring_units_of_one_mask_are_independent() -> None:
    torch.manual_seed(2)
    mask = kept(Dropout(0.5))
    for a, b in [(mask[:, 0::2], mask[:, 1::2]), (mask[:-1], mask[1:])]:  # units, rows
        r = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
        assert abs(r) < Z / math.sqrt(a.numel())


@pytest.mark.parametrize("p", [0.25, 0.3])
def test_kept_units_are_scaled_by_one_over_one_minus_p_and_so_are_gradients(p: float) -> None:
    torch.manual_seed(3)
    x = torch.randn(300, 77, requires_grad=True)  # an odd number of units
    out = Dropout(p)(x)
    keep = out != 0
    assert torch.allclose(out[keep], x[keep] / (1 - p), rtol=1e-6, atol=0)
    out.sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad != 0, keep)
    assert torch.allclose(x.grad[keep], torch.full_like(x.grad[keep], 1 / (1 - p)))
    assert abs(out.mean().item() - x.mean().item()) < 0.05  # the scale keeps the expectation


def test_eval_is_the_identity_and_p_0_passes_through_while_p_1_drops_all() -> None:
    x = torch.randn(64, 500)
    drop = Dropout(0.3).eval()
    assert drop(x) is x
    assert Dropout(0.0)(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))


def test_a_non_contiguous_input_is_masked_in_its_own_shape() -> None:
    torch.manual_seed(4)
    x = torch.ones(500, 64).t()
    out = Dropout(0.5)(x)
    assert out.shape == (64, 500)
    assert set(out.unique().tolist()) == {0.0, 2.0}


def test_the_mask_comes_from_the_seeded_generator() -> None:
    drop = Dropout(0.3)
    torch.manual_seed(5)
    first = kept(drop)
    torch.manual_seed(5)
    assert torch.equal(kept(drop), first)
    torch.manual_seed(6)
    assert not torch.equal(kept(drop), first)


def test_the_threshold_covers_the_whole_32_bit_range() -> None:
    assert keep_below(0.5) == 0
    assert keep_below(0.3) == round(0.7 * 2**32) - 2**31
    assert keep_below(1e-12) == 2**31 - 1  # nearly always kept, and still an int32
    assert keep_below(1 - 1e-12) == -(2**31)  # nearly never


def test_weights_load_both_ways_with_torchs_dropout() -> None:
    ours = build_mlp((50, 20), batch_norm=False, dropout=0.3)
    torchs = nn.Sequential(*(nn.Dropout(0.3) if isinstance(m, Dropout) else m for m in ours))
    assert list(ours.state_dict()) == list(torchs.state_dict())
    ours.load_state_dict(torchs.state_dict())
    torchs.load_state_dict(ours.state_dict())


@pytest.mark.slow
def test_a_seeded_epoch_with_dropout_repeats_bit_for_bit() -> None:
    x, y = torch.randn(512, 784), torch.randint(0, 10, (512,))
    splits = Splits(x, y, x[:0], y[:0], ())

    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        model = build_mlp((64, 32), batch_norm=False, dropout=0.3)
        optimizer = make_optimizer("adam", model.parameters(), 1e-3, 1e-5, 0.9)
        generator = torch.Generator().manual_seed(seed)
        train_epoch(model, optimizer, splits, FitConfig(1, 64, 1, seed), generator)
        return [p.detach() for p in model.parameters()]

    first = weights(7)
    assert all(torch.equal(a, b) for a, b in zip(first, weights(7), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, weights(8), strict=True))
