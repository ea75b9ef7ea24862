"""Grid dataset: quadrant placement by pixels, four distinct classes, seeding, errors."""

import pytest
import torch

import camrepro  # noqa: F401
from camrepro.data.grid import downscale_half, make_grids, quadrant_boxes, tile


def _block_mean(image: torch.Tensor) -> torch.Tensor:
    """2×2 block means written out directly (independent of avg_pool2d)."""
    return (image[:, 0::2, 0::2] + image[:, 0::2, 1::2] + image[:, 1::2, 0::2] + image[:, 1::2, 1::2]) / 4


def test_downscale_half_known_values():
    image = torch.tensor([[[1.0, 3.0, 0.0, 0.0],
                           [5.0, 7.0, 0.0, 4.0],
                           [2.0, 2.0, 1.0, 1.0],
                           [2.0, 2.0, 1.0, 1.0]]]).unsqueeze(0)
    out = downscale_half(image)
    assert out.tolist() == [[[[4.0, 1.0], [2.0, 1.0]]]]
    with pytest.raises(ValueError, match="even"):
        downscale_half(torch.zeros(1, 3, 5, 4))


def test_quadrant_boxes_and_tile_order():
    assert quadrant_boxes(4, 6).tolist() == [[0, 0, 3, 2], [3, 0, 6, 2], [0, 2, 3, 4], [3, 2, 6, 4]]
    quarters = torch.arange(4.0).reshape(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 3)
    grid = tile(quarters)[0, 0]
    assert grid.tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]]
    with pytest.raises(ValueError, match="even"):
        quadrant_boxes(5, 4)


def test_quadrants_hold_the_downscaled_sources():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 8, 10, generator=generator)
    labels = torch.tensor([3, 3, 5, 8, 8, 8, 1, 0, 0, 5, 7, 1])
    g = make_grids(images, labels, n_grids=20, seed=11)
    assert g.images.shape == (20, 3, 8, 10) and g.classes.shape == g.sources.shape == (20, 4)
    assert len(g) == 20
    boxes = quadrant_boxes(8, 10)
    for k in range(20):
        assert len(set(g.classes[k].tolist())) == 4
        assert torch.equal(labels[g.sources[k]], g.classes[k])
        for q in range(4):
            x0, y0, x1, y1 = boxes[q].tolist()
            expected = _block_mean(images[g.sources[k, q]])
            torch.testing.assert_close(g.images[k, :, y0:y1, x0:x1], expected)


def test_classes_and_quadrant_order_vary_and_are_seeded():
    images = torch.rand(6, 1, 4, 4)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    a = make_grids(images, labels, 200, seed=1)
    b = make_grids(images, labels, 200, seed=1)
    c = make_grids(images, labels, 200, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.classes, c.classes)
    # every class lands in every quadrant at some point, and every class is used
    for q in range(4):
        assert set(a.classes[:, q].tolist()) == set(range(6))


def test_photos_are_drawn_among_their_class():
    images = torch.rand(8, 1, 2, 2)
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 3, 3])
    g = make_grids(images, labels, 300, seed=0)
    assert set(g.sources[g.classes == 0].tolist()) == {0, 1, 2, 3}
    assert set(g.sources[g.classes == 3].tolist()) == {6, 7}


def test_errors():
    with pytest.raises(ValueError, match="only 3 distinct"):
        make_grids(torch.rand(5, 3, 4, 4), torch.tensor([0, 1, 2, 2, 1]), 1)
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        make_grids(torch.rand(5, 3, 4, 4), torch.arange(4), 1)
    with pytest.raises(TypeError, match="integer"):
        make_grids(torch.rand(4, 3, 4, 4), torch.rand(4), 1)
    with pytest.raises(ValueError, match="n_grids"):
        make_grids(torch.rand(4, 3, 4, 4), torch.arange(4), 0)
    with pytest.raises(ValueError, match=r"\[N,C,H,W\]"):
        make_grids(torch.rand(4, 4, 4), torch.arange(4), 1)
    with pytest.raises(ValueError, match="even"):
        make_grids(torch.rand(4, 3, 5, 4), torch.arange(4), 1)
