"""Packaged photos: shapes, range, fixed order, subsets, pixel identity with the source files."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import camrepro  # noqa: F401
from camrepro.data import photos
from camrepro.data.photos import SKIMAGE_PHOTOS, load_photos, photo_files
from camrepro.data.transforms import imagenet_preprocess


def test_ai_benchmark_photos():
    ps = load_photos("ai-benchmark", size=32)
    assert len(ps) == 100 and ps.source == "ai-benchmark"
    assert ps.images.shape == (100, 3, 32, 32) and ps.images.dtype == torch.float32
    assert 0.0 <= ps.images.min() and ps.images.max() <= 1.0
    # numeric order of the file names 0.jpg … 99.jpg, not lexicographic (which would put 10 after 1)
    assert ps.names[:3] == ["ai-benchmark/0", "ai-benchmark/1", "ai-benchmark/2"]
    assert ps.names[-1] == "ai-benchmark/99"
    assert "ai_benchmark" not in sys.modules  # located, never imported (it imports TensorFlow)


def test_skimage_photos_and_all():
    ps = load_photos("skimage", size=32)
    assert ps.names == [f"skimage/{name}" for name in SKIMAGE_PHOTOS]
    assert ps.images.shape == (len(SKIMAGE_PHOTOS), 3, 32, 32)
    both = load_photos("all", size=32)
    assert len(both) == 100 + len(SKIMAGE_PHOTOS)
    assert both.names[100:] == ps.names
    torch.testing.assert_close(both.images[100:], ps.images, rtol=0, atol=0)


def test_pixels_match_the_file_and_skimage():
    from skimage import data as skdata

    name, path = photo_files("skimage")[1]
    assert name == "skimage/chelsea"
    # the bundled file is scikit-image's own chelsea image
    np.testing.assert_array_equal(np.asarray(Image.open(path)), skdata.chelsea())
    expected = imagenet_preprocess(48)(Image.fromarray(skdata.chelsea()))
    torch.testing.assert_close(load_photos("skimage", size=48).images[1], expected, rtol=0, atol=0)


def test_subset_is_seeded_and_ordered():
    a = load_photos("ai-benchmark", n=7, size=32, seed=3)
    b = load_photos("ai-benchmark", n=7, size=32, seed=3)
    c = load_photos("ai-benchmark", n=7, size=32, seed=4)
    assert a.names == b.names and torch.equal(a.images, b.images)
    assert a.names != c.names
    numbers = [int(n.split("/")[1]) for n in a.names]
    assert numbers == sorted(numbers) and len(set(numbers)) == 7
    full = load_photos("ai-benchmark", size=32)
    torch.testing.assert_close(a.images, full.images[numbers], rtol=0, atol=0)


def test_result_is_a_copy():
    a = load_photos("skimage", size=16)
    a.images.zero_()
    assert load_photos("skimage", size=16).images.max() > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"source": "imagenet"}, "unknown photo source"),
    ({"source": "skimage", "n": 0}, "n must be"),
    ({"source": "skimage", "n": 6}, "asked for 6 photos"),
    ({"source": "skimage", "size": 0}, "size must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_photos(**kwargs)


def test_missing_ai_benchmark_names_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ai_benchmark" else real(name, *a))
    photos._decoded_source.cache_clear()
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps ai-benchmark==0\.1\.2"):
        load_photos("ai-benchmark")
    photos._decoded_source.cache_clear()
