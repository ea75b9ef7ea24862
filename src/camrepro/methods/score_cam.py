"""Score-CAM (Wang et al., CVPR Workshops 2020)."""

from __future__ import annotations

import torch

from camrepro.methods.base import ChannelCAM, normalize_maps, upsample
from camrepro.methods.validation import check_positive_int
from camrepro.models.folded import folded_forward
from camrepro.models.masking import masked_forward
from camrepro.progress import progress
from camrepro.tensors import (  # noqa: F401  (default_batch_size: re-exported)
    as_logits, default_batch_size, forward_channels_last,
)


class ScoreCAM(ChannelCAM):
    """Score-CAM: a channel's weight is how much its activation map, used as a mask, raises the score.

    Paper: H. Wang, Z. Wang, M. Du, F. Yang, Z. Zhang, S. Ding, P. Mardziel, X. Hu, "Score-CAM: Score-Weighted
    Visual Explanations for Convolutional Neural Networks", CVPR Workshops 2020, Sec. 3 (Definition 2, the
    Channel-wise Increase of Confidence, and the Score-CAM map built on it):

        H_k = s(Up(A_k))  (bilinear upsampling to the input size, then min-max to [0, 1]),
        α_k^c = C(A_k) = f^c(X ∘ H_k) − f^c(X_b),      L^c = ReLU(Σ_k α_k^c A_k),

    with f^c the softmax probability of class c (the paper normalises scores with a softmax) and X_b the
    black image. X ∘ H_k multiplies the [0, 1] image (pixel space, before the network's mean/std
    normalisation), through :func:`camrepro.models.masking.masked_forward`.

    Batched: the masked copies of all images and channels are formed chunk by chunk, and ``batch_size`` of
    them go through the network per forward pass (default: :func:`default_batch_size` of the images' device,
    8 on the CPU, 64 on a GPU). A channel whose activation map is constant has H_k = 0 (the
    normalisation of a constant map), so its masked image is the black image and its score is f^c(X_b)
    exactly: those channels are not run again, which changes no result.

    Cost: 1 forward (capture) + 1 forward of the black image per call + one forward per non-constant channel
    per image (K′ ≤ K), in ⌈B·K′ / batch_size⌉ batched passes; no backward. The masked passes (and the black
    image's) run on the model's folded copy (:func:`camrepro.models.folded.folded_forward`: batch
    normalisations folded into the convolutions, checked against the model) with channels-last inputs on the
    CPU (:func:`camrepro.tensors.channels_last`): the same scores up to rounding, in about 0.4× the time of
    contiguous passes of the model at 16 images; a bar counts the batches on a terminal
    (:func:`camrepro.progress.progress`).

    Example:
        >>> cam = ScoreCAM(net, layer="features.18", batch_size=32)
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Deviations from the paper: the paper's Algorithm 1 applies a further softmax across channels to the
    logit differences, and its official code uses f^c(X ∘ H_k) without subtracting f^c(X_b); we implement the
    definition of the text (``subtract_baseline=False`` gives the official code's weights). Upsampling uses
    ``align_corners=False`` as every map of this package.
    """

    name = "score-cam"
    paper = "Wang et al., CVPR Workshops 2020"
    needs_gradients = False
    forward_passes = "1 + K' per image (+1 black image per call); K' <= K non-constant channels"
    # Not measured in bf16 (K' masked passes per image); Ablation-CAM's score differences fail the test.
    autocast_applies = False
    autocast_refusal = ("its weights are differences of softmax scores of masked images, which bfloat16's "
                        "8-bit mantissa rounds (Ablation-CAM's score differences correlate below 0.999)")

    def __init__(self, model, layer=None, *, batch_size: int | None = None, subtract_baseline: bool = True,
                 check_range: bool = True, precision: str = "float32"):
        # masks pixels: check_range=False is refused
        super().__init__(model, layer, check_range=check_range, precision=precision)
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        if not isinstance(subtract_baseline, bool):
            raise TypeError(f"subtract_baseline must be a bool, got {type(subtract_baseline).__name__}")
        self.subtract_baseline = subtract_baseline

    def _channel_weights(self, images, acts, logits, targets):
        acts = acts.detach()
        flat = acts.flatten(2)
        varying = flat.amax(dim=2) > flat.amin(dim=2)  # [B, K]
        size = tuple(images.shape[-2:])
        chunk = self.batch_size or default_batch_size(images.device)
        # no_grad rather than inference_mode: measured interleaved, inference_mode was no faster (1.04x no_grad)
        with torch.no_grad():
            net = folded_forward(self.model, images)   # the K' masked passes need no hook

            def masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
                return masked_forward(net, x, m, space="pixel")

            black = torch.zeros_like(images[:1])
            baseline = torch.softmax(as_logits(forward_channels_last(net, black, remember=self.model),
                                               self.model).float(), dim=1)[0, targets]  # [B]
            scores = baseline[:, None].repeat(1, acts.shape[1])  # constant maps score f^c(X_b)
            image_index, channel_index = varying.nonzero(as_tuple=True)
            starts = range(0, image_index.numel(), chunk)
            for start in progress(starts, total=len(starts), desc=f"{self.name} channel batches", unit="batch"):
                b = image_index[start : start + chunk]
                k = channel_index[start : start + chunk]
                masks = normalize_maps(upsample(acts[b, k], size))
                out = forward_channels_last(masked, images[b], masks, remember=self.model)
                scores[b, k] = torch.softmax(out.float(), dim=1).gather(1, targets[b, None]).squeeze(1)
        weights = scores - baseline[:, None] if self.subtract_baseline else scores
        return weights.to(acts.dtype)
