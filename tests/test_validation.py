"""Input validation shared by every method (src/camrepro/methods/validation.py) and the map helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camrepro.methods.base import inference_scope, normalize_maps, upsample
from camrepro.methods.validation import check_images, check_target_range, parse_targets, resolve_layer


def test_check_images_errors_name_the_problem():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_images([[0.0]])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*unsqueeze"):
        check_images(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        check_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        check_images(torch.rand(0, 3, 8, 8))
    bad = torch.rand(1, 3, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_images(bad)


def test_parse_targets_forms():
    dev = torch.device("cpu")
    assert parse_targets(None, 3, dev) is None
    assert parse_targets(2, 3, dev).tolist() == [2, 2, 2]
    assert parse_targets([0, 1, 2], 3, dev).tolist() == [0, 1, 2]
    assert parse_targets(torch.tensor([4, 5, 6], dtype=torch.int32), 3, dev).dtype == torch.long
    assert parse_targets(torch.tensor(7), 2, dev).tolist() == [7, 7]
    with pytest.raises(ValueError, match="got 2 targets for a batch of 3"):
        parse_targets([0, 1], 3, dev)
    with pytest.raises(TypeError, match="integer tensor"):
        parse_targets(torch.tensor([0.5, 1.0]), 2, dev)
    with pytest.raises(TypeError, match="got a bool"):
        parse_targets(True, 1, dev)
    with pytest.raises(TypeError, match="contain ints"):
        parse_targets([0, 1.0], 2, dev)
    with pytest.raises(TypeError, match="got str"):
        parse_targets("cat", 1, dev)
    with pytest.raises(ValueError, match="one class index per image"):
        parse_targets(torch.zeros(2, 2, dtype=torch.long), 2, dev)
    with pytest.raises(ValueError, match="target class 10 is out of range for a model with 10 outputs"):
        check_target_range(torch.tensor([1, 10]), 10)
    with pytest.raises(ValueError, match="target class -1"):
        check_target_range(torch.tensor([-1]), 10)


def test_resolve_layer_by_name_and_module():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)))
    assert resolve_layer(net, "1.1") == ("1.1", net[1][1])
    assert resolve_layer(net, net[0]) == ("0", net[0])
    with pytest.raises(ValueError, match="no layer named '1.2'.*did you mean"):
        resolve_layer(net, "1.2")
    with pytest.raises(ValueError, match="not a submodule"):
        resolve_layer(net, nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="dotted module name"):
        resolve_layer(net, 3)


def test_normalize_maps_known_values_and_constant_maps():
    maps = torch.tensor([[[1.0, 3.0], [5.0, 2.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = normalize_maps(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))
    torch.testing.assert_close(out[1], torch.zeros(2, 2))  # constant → zeros, not NaN


def test_upsample_is_bilinear_without_corner_alignment():
    m = torch.tensor([[[0.0, 1.0]]])  # 1×2 → 1×4
    out = upsample(m, (1, 4))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))
    assert upsample(m, (1, 2)) is m


def test_inference_scope_restores_flags_even_after_an_exception():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2)).train()
    net[2].eval()  # mixed flags must be restored exactly
    net[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError):
        with inference_scope(net):
            assert not net.training and not net[1].training
            assert not any(p.requires_grad for p in net.parameters())
            raise RuntimeError("inside")
    assert net.training and net[1].training and not net[2].training
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad


def test_inference_scope_leaves_a_model_in_eval_mode_untouched_and_undoes_changes_made_inside():
    class Counting(nn.Sequential):
        calls = 0

        def train(self, mode: bool = True):
            Counting.calls += 1
            return super().train(mode)

    net = Counting(nn.Linear(2, 2), nn.Dropout(0.5)).eval()
    Counting.calls = 0
    with inference_scope(net):
        net[1].training = True  # a block that switches a module is undone
    assert Counting.calls == 0  # a model already in eval mode is not switched module by module
    assert not any(m.training for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())


def test_the_module_walk_finds_every_module_once_also_a_shared_one():
    from camrepro.tensors import _submodules

    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.Sequential(nn.ReLU(), shared), nn.ModuleList([nn.Sequential()]))
    net.add_module("empty", None)
    found = _submodules(net)
    assert len(found) == len({id(m) for m in found}) == len(list(net.modules())) == 6
    assert {id(m) for m in found} == {id(m) for m in net.modules()}
