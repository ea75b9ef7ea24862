"""Ablation-CAM (Desai & Ramaswamy, WACV 2020)."""

from __future__ import annotations

import torch
from torch import nn

from camrepro.methods.base import EPS, ChannelCAM, target_scores
from camrepro.methods.tail import check_tail, extract_tail
from camrepro.methods.validation import check_positive_int


class AblationCAM(ChannelCAM):
    """Ablation-CAM: a channel's weight is the relative drop of the target score when that channel is zeroed.

    Paper: S. Desai, H. G. Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via
    Gradient-free Localization", WACV 2020, Sec. 3:  w_k^c = (y^c − y_k^c) / y^c,  map = ReLU(Σ_k w_k^c A_k),
    where y^c is the target logit and y_k^c the logit with activation map k set to zero.

    The ablations run only the network tail after the layer (:func:`camrepro.methods.tail.extract_tail`, or
    ``tail=``), on copies of the captured activations with one channel zeroed, ``batch_size`` copies per tail
    pass. A channel that is already all zero is not run: zeroing it leaves the tail's input unchanged, so
    y_k^c = y^c and its weight is exactly 0.

    Cost: 1 forward + one tail pass per non-zero channel per image (K′ ≤ K), in ⌈B·K′ / batch_size⌉ batched
    tail passes, plus one tail pass that checks the tail reproduces the logits; no backward.

    Example:
        >>> cam = AblationCAM(net, layer="features.18", batch_size=128)
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Input range: the ablations zero channels of the layer, never pixels, so ``check_range=False`` explains a
    model that takes another input range.

    Deviations from the paper: where |y^c| < 1e-8 the division uses ±1e-8 instead (the paper leaves it
    undefined).
    """

    name = "ablation-cam"
    paper = "Desai & Ramaswamy, WACV 2020"
    needs_gradients = False
    forward_passes = "1 forward + K' tail passes per image (K' <= K non-zero channels)"
    range_free = True  # check_range=False accepted (see Explainer)
    autocast_applies = False
    autocast_refusal = ("its weights are small differences of the target score with one channel removed; in "
                        "bfloat16 its maps correlate 0.998-0.9995 with the float32 maps, below 0.999 on some")

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        batch_size: int = 128,
        tail: nn.Module | None = None,
        check_range: bool = True,
        precision: str = "float32",
    ):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if tail is not None and not isinstance(tail, nn.Module):
            raise TypeError(f"tail must be an nn.Module, got {type(tail).__name__}")
        self.tail = tail if tail is not None else extract_tail(model, self.layer_name)

    def _channel_weights(self, images, acts, logits, targets):
        acts = acts.detach()
        check_tail(self.tail, acts, logits, "Ablation-CAM")
        y = target_scores(logits.detach(), targets)  # [B]
        ablated = y[:, None].repeat(1, acts.shape[1])  # all-zero channels: y_k = y
        image_index, channel_index = acts.flatten(2).ne(0).any(dim=2).nonzero(as_tuple=True)
        with torch.no_grad():
            for start in range(0, image_index.numel(), self.batch_size):
                b = image_index[start : start + self.batch_size]
                k = channel_index[start : start + self.batch_size]
                copies = acts[b].clone()
                copies[torch.arange(b.numel(), device=acts.device), k] = 0.0
                ablated[b, k] = target_scores(self.tail(copies), targets[b]).to(ablated.dtype)
        denominator = torch.where(y.abs() < EPS, torch.where(y < 0, -EPS, EPS), y)
        return (y[:, None] - ablated) / denominator[:, None]
