"""Tiny hand-weighted networks shared by the method tests: every activation and logit is known in closed form.

All networks take images [B, 3, H, W] and have the layout the pretrained models have::

    normalize → tripwire → features → global average pool → flatten → classifier

``features`` = ``Conv2d(3, 3, kernel 2, stride 2)`` whose channel k averages colour channel k over each
2×2 block (weights 1/4 on the diagonal, no bias), then ``ReLU``. So for an image in [0, 1], the activations
of the layer ``"features"`` are exactly ``A = avg_pool2d(x, 2)``: [B, 3, H/2, W/2], and for an image built
with :func:`block_image` (constant on 2×2 blocks) they are exactly the block values. The layer's resolution
is half the input's, so every method also exercises its upsampling.

- :func:`make_linear_tail_net` (fixture ``linear_tail_net``): classifier = Dropout + Linear(3 → 4) with the
  weights :data:`LINEAR_W` and bias :data:`LINEAR_B`. Logit c = Σ_k W[c, k] · mean(A_k) + b[c]; the tail after
  ``"features"`` is linear (the CAM setting: ∂y_c/∂A_kij = W[c, k] / (h·w) at every location).
- :func:`make_nonlinear_tail_net` (fixture ``nonlinear_tail_net``): a head Conv2d(3 → 2, 1×1, weights
  :data:`HEAD_V`, no bias) + ReLU after the layer, then GAP and Linear(2 → 3) (:data:`HEAD_W`,
  :data:`HEAD_B`). Logit c = Σ_m HEAD_W[c, m] · mean_ij ReLU(Σ_k HEAD_V[m, k] A_kij) + HEAD_B[c]:
  gradients vary per location.
- :func:`make_activation_net` (fixture ``relu6_net`` / ``relu_net``): for DeepLIFT: normalize (mean 0.5, std
  0.25, so that the black image is not the zero of the network's input), a 1×1 Conv2d(3 → 2) with large
  weights :data:`ACT_V` and bias :data:`ACT_BIAS` so that ReLU6 saturates, the activation module, GAP,
  Linear(2 → 2). Completeness of DeepLIFT on it holds only if the activation gets the Rescale rule.
- :func:`make_attention_net`: the linear-tail network returning an ``AttentionOutput`` (logits, attention map,
  channel weights) like the LFI-CAM and ABN networks.

Every network starts in **train mode with requires_grad=True** (as a user's model may be; the Dropout then
makes a forward pass random), so the API tests can check that methods switch to evaluation and restore both.
``net.tripwire`` is the identity until armed (``net.tripwire.arm(after=n)``): then the (n+1)-th forward pass
through it raises :class:`TripwireError`, which lets a test make a method fail halfway through its own
forward passes; while armed, ``after − net.tripwire.remaining`` counts the passes made.

Import the builders with ``from conftest import make_linear_tail_net`` (pytest puts tests/ on the path) or ask
for the fixtures by name.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import camrepro  # noqa: F401  (torchvision compat before anything imports it)
from camrepro.models.normalize import Normalize

LAYER = "features"
"""The explained layer of every tiny network (output of the ReLU after the stride-2 conv)."""

LINEAR_W = torch.tensor([[1.0, -2.0, 0.5], [0.5, 1.0, -1.0], [-1.0, 0.25, 2.0], [0.0, 0.0, 0.0]])
LINEAR_B = torch.tensor([0.1, -0.2, 0.3, 0.0])

HEAD_V = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]])
HEAD_W = torch.tensor([[2.0, 1.0], [-1.0, 3.0], [0.5, -0.5]])
HEAD_B = torch.tensor([0.0, 0.5, -0.5])

ACT_V = torch.tensor([[8.0, 4.0, 0.0], [-2.0, 0.0, 6.0]])
ACT_BIAS = torch.tensor([1.0, 2.0])
ACT_W = torch.tensor([[1.0, -0.5], [0.25, 2.0]])
ACT_B = torch.tensor([0.2, -0.1])


class TripwireError(RuntimeError):
    """Raised by an armed :class:`Tripwire`."""


class Tripwire(nn.Module):
    """The identity, until armed: then it lets ``after`` forward passes through and raises on the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.remaining: int | None = None

    def arm(self, after: int = 0) -> None:
        self.remaining = after

    def disarm(self) -> None:
        self.remaining = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.remaining is not None and isinstance(x, torch.Tensor):  # a torch.fx proxy passes through
            if self.remaining <= 0:
                raise TripwireError("the tripwire went off inside the forward pass")
            self.remaining -= 1
        return x


class TinyNet(nn.Module):
    """normalize → tripwire → features → global average pool → flatten → classifier."""

    def __init__(
        self,
        features: nn.Module,
        classifier: nn.Module,
        mean: tuple[float, ...] = (0.0, 0.0, 0.0),
        std: tuple[float, ...] = (1.0, 1.0, 1.0),
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.tripwire = Tripwire()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.tripwire(self.normalize(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def _block_average_conv() -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, kernel_size=2, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for k in range(3):
            conv.weight[k, k] = 0.25
    return conv


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _as_user_model(net: nn.Module) -> nn.Module:
    """Train mode and trainable parameters: the state a method must leave untouched."""
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
    return net


def make_linear_tail_net() -> TinyNet:
    """Layer ``"features"`` → GAP → Dropout → Linear(LINEAR_W, LINEAR_B): logits = W · mean(A) + b."""
    features = nn.Sequential(_block_average_conv(), nn.ReLU())
    classifier = nn.Sequential(nn.Dropout(0.5), _linear(LINEAR_W, LINEAR_B))
    return _as_user_model(TinyNet(features, classifier))


class NonLinearTailNet(TinyNet):
    """As :class:`TinyNet`, with ``head`` = Conv2d(3 → 2, 1×1, HEAD_V) + ReLU between layer and pool."""

    def __init__(self) -> None:
        features = nn.Sequential(_block_average_conv(), nn.ReLU())
        super().__init__(features, _linear(HEAD_W, HEAD_B))
        conv = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(HEAD_V.view(2, 3, 1, 1))
        self.head = nn.Sequential(conv, nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.features(self.tripwire(self.normalize(x))))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_nonlinear_tail_net() -> NonLinearTailNet:
    return _as_user_model(NonLinearTailNet())


def make_activation_net(activation: type[nn.Module] = nn.ReLU6) -> TinyNet:
    """normalize(.5, .25) → Conv2d(3 → 2, 1×1, ACT_V, ACT_BIAS) → activation → GAP → Linear(ACT_W, ACT_B)."""
    conv = nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(ACT_V.view(2, 3, 1, 1))
        conv.bias.copy_(ACT_BIAS)
    features = nn.Sequential(conv, activation())
    return _as_user_model(TinyNet(features, _linear(ACT_W, ACT_B), mean=(0.5,) * 3, std=(0.25,) * 3))


class TinyAttentionNet(TinyNet):
    """The linear-tail network returning an :class:`~camrepro.models.attention_output.AttentionOutput`, as the
    attention networks (LFI-CAM, ABN) do: ``attention`` = sigmoid(Σ_k A_k) [B, h, w], ``weights`` = the
    softmax over channels of mean(A) [B, K]. For the ``attention`` method, which explains such networks."""

    def forward(self, x: torch.Tensor):
        from camrepro.models.attention_output import AttentionOutput

        acts = self.features(self.tripwire(self.normalize(x)))
        logits = self.classifier(torch.flatten(F.adaptive_avg_pool2d(acts, 1), 1))
        return AttentionOutput(
            logits=logits,
            attention=torch.sigmoid(acts.sum(dim=1)),
            weights=torch.softmax(acts.mean(dim=(2, 3)), dim=1),
        )


def make_attention_net() -> TinyAttentionNet:
    features = nn.Sequential(_block_average_conv(), nn.ReLU())
    classifier = nn.Sequential(nn.Dropout(0.5), _linear(LINEAR_W, LINEAR_B))
    return _as_user_model(TinyAttentionNet(features, classifier))


def block_image(blocks: torch.Tensor) -> torch.Tensor:
    """[B, 3, h, w] block values → the [B, 3, 2h, 2w] image constant on 2×2 blocks (its activations are
    ``blocks`` exactly)."""
    return blocks.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def hooks_on(model: nn.Module) -> list[str]:
    """Every hook registered on any submodule of ``model`` (empty when a method cleaned up after itself)."""
    found = []
    for name, module in model.named_modules():
        for kind in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            if getattr(module, kind, None):
                found.append(f"{name or '<root>'}.{kind}")
    return found


@pytest.fixture
def linear_tail_net() -> TinyNet:
    return make_linear_tail_net()


@pytest.fixture
def nonlinear_tail_net() -> NonLinearTailNet:
    return make_nonlinear_tail_net()


@pytest.fixture
def relu6_net() -> TinyNet:
    return make_activation_net(nn.ReLU6)


@pytest.fixture
def relu_net() -> TinyNet:
    return make_activation_net(nn.ReLU)


@pytest.fixture
def one_thread():
    """Run the test on one intra-op thread, restoring the count after.

    Two reasons to ask for it: tiny networks, where intra-op threads only wait on each other (measured: 25×
    slower with 2 threads than with 1 on a loaded 2-core machine), and exact batch == loop comparisons, since a
    kernel splits its reductions by thread differently for a batch and for one image (float64 gradients then
    differ by ~1e-15, which Adam can amplify).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
