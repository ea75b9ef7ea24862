"""Transforms: PIL → [3,H,W] float in [0,1], ImageNet resize/centre-crop geometry."""

import numpy as np
import pytest
import torch
from PIL import Image

import camrepro  # noqa: F401  (makes torchvision importable)
from camrepro.data.transforms import (
    ImagenetPreprocess, center_crop, imagenet_preprocess, pil_to_tensor, resize_shorter_side,
)


def test_pil_to_tensor_known_values():
    array = np.array([[[0, 51, 255], [255, 0, 102]]], dtype=np.uint8)  # 1×2 RGB
    out = pil_to_tensor(Image.fromarray(array))
    assert out.shape == (3, 1, 2) and out.dtype == torch.float32
    expected = torch.tensor([[[0.0, 1.0]], [[0.2, 0.0]], [[1.0, 0.4]]])
    torch.testing.assert_close(out, expected)


def test_pil_to_tensor_grey_is_repeated():
    out = pil_to_tensor(Image.fromarray(np.full((2, 3), 51, dtype=np.uint8)))
    assert out.shape == (3, 2, 3)
    torch.testing.assert_close(out, torch.full((3, 2, 3), 0.2))


def test_resize_shorter_side_sizes():
    # 300×200 (w×h): shorter side 200 → 100, longer int(100·300/200) = 150.
    assert resize_shorter_side(Image.new("RGB", (300, 200)), 100).size == (150, 100)
    # portrait 200×301: int(100·301/200) = int(150.5) = 150 (truncated, not rounded)
    assert resize_shorter_side(Image.new("RGB", (200, 301)), 100).size == (100, 150)


def test_center_crop_offsets():
    # a 5×4 image whose pixel value is its column index; crop 2 → left = round(1.5) = 2, top = round(1.0) = 1
    array = np.tile(np.arange(5, dtype=np.uint8), (4, 1))
    crop = np.asarray(center_crop(Image.fromarray(array), 2))
    np.testing.assert_array_equal(crop, [[2, 3], [2, 3]])
    with pytest.raises(ValueError, match="does not fit"):
        center_crop(Image.fromarray(array), 5)


def test_imagenet_preprocess_geometry_and_range():
    pre = imagenet_preprocess(224)
    assert isinstance(pre, ImagenetPreprocess) and pre.resize == 256
    assert imagenet_preprocess(112).resize == 128
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    out = pre(image)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_imagenet_preprocess_matches_torchvision():
    from torchvision import transforms as T

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (333, 250, 3), dtype=np.uint8))
    reference = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(image)
    torch.testing.assert_close(imagenet_preprocess(224)(image), reference, rtol=0, atol=0)


def test_constant_image_stays_constant():
    out = imagenet_preprocess(64)(Image.new("RGB", (90, 70), (255, 0, 51)))
    torch.testing.assert_close(out[:, 10, 10], torch.tensor([1.0, 0.0, 0.2]))
    assert out.shape == (3, 64, 64)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_size(bad):
    with pytest.raises(ValueError, match="size"):
        imagenet_preprocess(bad)


def test_not_an_image():
    with pytest.raises(TypeError, match="PIL"):
        imagenet_preprocess()(np.zeros((4, 4, 3)))
    with pytest.raises(TypeError, match="PIL"):
        pil_to_tensor(torch.zeros(3, 4, 4))
