"""The contract every registered method keeps, checked for every name in ``methods.REGISTRY``.

A method that lands in the registry is covered automatically. A check is relaxed for a method only through a
capability the class declares and documents (``validates_target_range = False``: the method runs no forward
pass when targets are given, so it cannot know the number of classes; then we check that it indeed runs none).

Two tables adapt the set-up, never the checks: ``NETWORKS`` gives the kind of network a method is defined for
when it is not a plain classifier (``attention`` reads the map an attention network returns), and
``QUICK_PARAMETERS`` shortens iterative methods (fewer Opti-CAM iterations) so that the file stays fast; the
property being checked does not depend on the number of iterations.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import LAYER, TripwireError, hooks_on, make_attention_net, make_linear_tail_net

from camrepro import methods

pytestmark = pytest.mark.filterwarnings("error")

NAMES = sorted(methods.REGISTRY)
NUM_CLASSES = 4


NETWORKS = {"attention": make_attention_net}
QUICK_PARAMETERS = {"opti-cam": {"iterations": 5}}


def network_for(name: str) -> torch.nn.Module:
    return NETWORKS.get(name, make_linear_tail_net)()


def build(name: str, net: torch.nn.Module) -> methods.Explainer:
    cls = methods.get(name)
    kwargs = QUICK_PARAMETERS.get(name, {})
    return cls(net, layer=LAYER, **kwargs) if cls.needs_layer else cls(net, **kwargs)


def logits(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from camrepro.models.attention_output import logits_of

    with torch.no_grad():
        return logits_of(net(x))


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=generator)


def snapshot(net: torch.nn.Module) -> dict:
    return {
        "training": {name: m.training for name, m in net.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in net.named_parameters()},
        "grads": {name: p.grad for name, p in net.named_parameters()},
        "state": {k: v.clone() for k, v in net.state_dict().items()},
    }


def assert_untouched(net: torch.nn.Module, before: dict) -> None:
    after = snapshot(net)
    assert hooks_on(net) == []
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(g is None for g in after["grads"].values()), "a parameter received a .grad"
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), f"{key} changed"
    assert torch.is_grad_enabled()
    leftovers = [name for name, m in net.named_modules() for a in ("input", "output") if a in m.__dict__]
    assert leftovers == []


def test_the_registry_lists_every_baseline_and_each_class_documents_itself():
    expected = {
        "cam",
        "grad-cam",
        "grad-cam++",
        "xgrad-cam",
        "layer-cam",
        "score-cam",
        "ablation-cam",
        "fake-cam",
        "integrated-gradients",
        "deeplift",
    }
    assert expected <= set(NAMES)
    missing = []
    for name in NAMES:
        cls = methods.get(name)
        assert cls.name == name
        assert cls.paper and cls.forward_passes, name
        doc = inspect.getdoc(cls) or ""
        missing += [
            f"{name}: {section!r}"
            for section in ("Paper", "Cost", "Example", "Deviations from the paper")
            if section not in doc
        ]
    assert missing == [], f"docstring sections missing: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_range_dtype_and_device(name):
    net = network_for(name)
    x = images()
    maps = build(name, net)(x, [0, 2, 1])
    assert maps.shape == (3, 8, 8)
    assert maps.dtype == torch.float32 and maps.device == x.device
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_gives_the_same_maps_as_a_loop_over_single_images(name):
    net = network_for(name)
    method = build(name, net)
    x = images(3, seed=1)
    for targets in ([0, 2, 1], None):
        batched = method(x, targets)
        looped = torch.cat(
            [method(x[i : i + 1], None if targets is None else [targets[i]]) for i in range(3)]
        )
        torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-4)
        if methods.get(name).has_weights:
            weights = method.weights(x, targets)
            single = torch.cat(
                [method.weights(x[i : i + 1], None if targets is None else [targets[i]]) for i in range(3)]
            )
            torch.testing.assert_close(weights, single, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_targets_none_explains_the_predicted_class(name):
    net = network_for(name)
    x = images(3, seed=2)
    predicted = logits(net.eval(), x).argmax(dim=1)
    net.train()
    assert build(name, net).explain(x).targets.tolist() == predicted.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_the_model_is_left_as_it_was_found(name):
    net = network_for(name)
    before = snapshot(net)
    method = build(name, net)
    method(images(), [0, 1, 2])
    method(images(), None)
    assert_untouched(net, before)


@pytest.mark.parametrize("name", NAMES)
def test_the_model_is_left_as_it_was_found_after_a_call_that_raised(name):
    net = network_for(name)
    method = build(name, net)
    before = snapshot(net)
    raised = set()
    for after in (0, 1, 2):  # fail in the first, second and third forward pass
        for targets in ([0, 1, 2], None):
            net.tripwire.arm(after=after)
            try:
                method(images(), targets)
            except TripwireError:
                raised.add((after, targets is None))
            finally:
                net.tripwire.disarm()
            assert_untouched(net, before)
    assert (0, True) in raised  # every method runs the network at least once with targets=None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_a_constant_image_gives_no_nan(name, value):
    net = network_for(name)
    maps = build(name, net)(torch.full((2, 3, 8, 8), value), [0, 1])
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_errors_that_name_the_problem(name):
    net = network_for(name)
    method = build(name, net)
    x = images()
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*unsqueeze"):
        method(x[0])
    with pytest.raises(TypeError, match="floating-point"):
        method((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="got 2 targets for a batch of 3"):
        method(x, [0, 1])
    with pytest.raises(TypeError, match="integer tensor"):
        method(x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="targets must contain ints"):
        method(x, [0.0, 1.0, 2.0])
    if getattr(methods.get(name), "validates_target_range", True):
        with pytest.raises(
            ValueError, match=f"target class {NUM_CLASSES} is out of range .* {NUM_CLASSES} outputs"
        ):
            method(x, [0, NUM_CLASSES, 1])
        with pytest.raises(ValueError, match="target class -1 is out of range"):
            method(x, -1)
    else:
        net.tripwire.arm(after=0)  # the declared reason: no forward pass at all
        method(x, [0, NUM_CLASSES, 1])
        net.tripwire.disarm()
    with pytest.raises(ValueError, match="no layer named 'featurez'.*did you mean 'features'"):
        methods.get(name)(net, layer="featurez")
    assert hooks_on(net) == []


def test_unknown_method_names_are_errors_that_suggest_the_right_name():
    with pytest.raises(ValueError, match="unknown method 'gradcam'.*did you mean 'grad-cam'"):
        methods.get("gradcam")
    with pytest.raises(TypeError, match="method name must be a string"):
        methods.get(3)


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_channel_coefficients_or_a_clear_error(name):
    net = network_for(name)
    method = build(name, net)
    if methods.get(name).has_weights:
        w = method.weights(images(), [0, 1, 2])
        assert w.shape == (3, 3) and torch.isfinite(w).all()
    else:
        with pytest.raises(TypeError, match="has no channel coefficients"):
            method.weights(images(), [0, 1, 2])


@pytest.mark.parametrize("name", NAMES)
def test_a_layer_is_required_exactly_when_the_method_explains_one(name):
    net = network_for(name)
    cls = methods.get(name)
    if cls.needs_layer:
        with pytest.raises(ValueError, match="pass layer="):
            cls(net)
        assert build(name, net).layer_name == LAYER
    else:
        assert cls(net).layer_name is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_maps_are_on_the_images_device(name):
    net = network_for(name).cuda()
    x = images().cuda()
    maps = build(name, net)(x, [0, 1, 2])
    assert maps.device == x.device
    cpu_maps = build(name, network_for(name))(images(), [0, 1, 2])
    torch.testing.assert_close(maps.cpu(), cpu_maps, atol=1e-4, rtol=1e-3)
