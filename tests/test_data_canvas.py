"""Canvas dataset: exact boxes and masks, clutter outside the item, seeding, cache and atomic writes.

A fake Fashion-MNIST split makes every expected value computable by hand: item ``i`` has label ``i % 10`` and
is zero except a block at rows 5..20, columns 7..18 whose values are ``20·(label+1) + (row+col) % 7``, so a
pixel's value says which class it was cut from and the item's tight box is known.
"""

from pathlib import Path

import pytest
import torch

import camrepro  # noqa: F401
from camrepro.data import canvas as cv
from camrepro.data.canvas import CanvasSet, generate_canvas, load_canvas, make_canvas, save_canvas
from camrepro.data.fashion_mnist import SPLITS, write_idx

N_ITEMS = 50


def _item(label: int) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    item = (20 * (label + 1) + (rows + cols) % 7).to(torch.uint8)
    item[:5], item[21:], item[:, :7], item[:, 19:] = 0, 0, 0, 0
    return item


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    labels = torch.arange(N_ITEMS) % 10
    for split in ("train", "test"):
        images_stem, labels_stem = SPLITS[split]
        write_idx(root / f"{images_stem}.gz", torch.stack([_item(int(c)) for c in labels]))
        write_idx(root / f"{labels_stem}.gz", labels.to(torch.uint8))
    return root


def test_item_pixels_box_and_mask_are_exact(fake_root):
    c = generate_canvas("train", 40, 48, seed=1, noise=0.0, root=fake_root)
    assert c.pixels.shape == (40, 1, 48, 48) and c.pixels.dtype == torch.uint8
    assert c.masks.shape == (40, 48, 48) and c.masks.dtype == torch.bool
    assert torch.equal(c.labels, c.sources % 10)
    for i in range(40):
        x, y, x1, y1 = c.regions[i].tolist()
        assert (x1 - x, y1 - y) == (28, 28)
        # the pasted square holds the item exactly: no clutter, no shift
        assert torch.equal(c.pixels[i, 0, y:y1, x:x1], _item(int(c.labels[i])))
        assert c.boxes[i].tolist() == [x + 7, y + 5, x + 19, y + 21]
        expected_mask = torch.zeros(48, 48, dtype=torch.bool)
        expected_mask[y + 5:y + 21, x + 7:x + 19] = True
        assert torch.equal(c.masks[i], expected_mask)


def test_clutter_is_outside_the_item_and_from_other_classes(fake_root):
    c = generate_canvas("train", 40, 48, seed=2, noise=0.0, n_clutter=5, clutter_size=6, root=fake_root)
    placed = c.clutter_boxes[..., 0] >= 0
    assert placed.all()  # a 28-px item on a 48-px canvas always leaves room for 6-px patches
    for i in range(40):
        x, y, x1, y1 = c.regions[i].tolist()
        outside = torch.ones(48, 48, dtype=torch.bool)
        outside[y:y1, x:x1] = False
        covered = torch.zeros(48, 48, dtype=torch.bool)
        for cx, cy, cx1, cy1 in c.clutter_boxes[i].tolist():
            assert cx1 - cx == 6 and cy1 - cy == 6
            assert cx1 <= x or cx >= x1 or cy1 <= y or cy >= y1  # disjoint from the pasted square
            covered[cy:cy1, cx:cx1] = True
        values = c.pixels[i, 0]
        assert not (values.bool() & outside & ~covered).any()  # outside: non-zero only under clutter
        donor_class = values[outside & values.bool()].long() // 20 - 1
        assert donor_class.numel() > 0 and not (donor_class == c.labels[i]).any()


def test_noise_is_bounded_and_covers_the_background(fake_root):
    c = generate_canvas("train", 20, 40, seed=3, noise=0.1, n_clutter=0, root=fake_root)
    clean = generate_canvas("train", 20, 40, seed=3, noise=0.0, n_clutter=0, root=fake_root)
    diff = c.pixels.int() - clean.pixels.int()
    assert diff.min() >= 0 and diff.max() <= round(0.1 * 255)
    assert (c.pixels[~c.masks.unsqueeze(1)] > 0).float().mean() > 0.9  # the background is not empty
    assert torch.equal(c.masks, clean.masks) and torch.equal(c.boxes, clean.boxes)


def test_random_scale_keeps_the_ground_truth_exact(fake_root):
    c = generate_canvas("train", 30, 64, seed=4, scale=(0.5, 2.0), noise=0.0, root=fake_root)
    sides = c.regions[:, 2] - c.regions[:, 0]
    assert torch.equal(sides, c.regions[:, 3] - c.regions[:, 1])
    assert sides.min() >= 14 and sides.max() <= 56 and len(sides.unique()) > 3
    for i in range(30):
        x, y, x1, y1 = c.regions[i].tolist()
        inside = torch.zeros(64, 64, dtype=torch.bool)
        inside[y:y1, x:x1] = True
        assert not (c.masks[i] & ~inside).any()
        # no clutter inside the square, so there a pixel is non-zero exactly where the mask is
        assert torch.equal(c.pixels[i, 0].bool() & inside, c.masks[i])
        bx0, by0, bx1, by1 = c.boxes[i].tolist()
        rows, cols = c.masks[i].nonzero().unbind(1)
        assert [bx0, by0, bx1, by1] == [int(cols.min()), int(rows.min()), int(cols.max()) + 1,
                                        int(rows.max()) + 1]


def test_same_parameters_same_tensors_and_seeds_differ(fake_root):
    a = generate_canvas("test", 25, 40, seed=7, root=fake_root)
    b = generate_canvas("test", 25, 40, seed=7, root=fake_root)
    c = generate_canvas("test", 25, 40, seed=8, root=fake_root)
    for name in ("pixels", "labels", "boxes", "regions", "masks", "sources", "clutter_boxes"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.pixels, c.pixels) and not torch.equal(a.regions, c.regions)


def test_images_and_dataset_views(fake_root):
    c = generate_canvas("train", 6, 32, seed=0, root=fake_root)
    images = c.images
    assert images.shape == (6, 1, 32, 32) and images.dtype == torch.float32
    assert torch.equal(images, c.pixels.float() / 255)
    c.channels = 3
    assert c.images.shape == (6, 3, 32, 32)
    ds = c.dataset()
    image, label = ds[2]
    assert len(ds) == 6 and image.shape == (3, 32, 32) and label == int(c.labels[2])
    assert torch.equal(image[0], image[2]) and torch.equal(image[:1], images[2])
    image, label, box, mask = c.dataset(channels=1, with_targets=True)[5]
    assert image.shape == (1, 32, 32) and torch.equal(box, c.boxes[5]) and torch.equal(mask, c.masks[5])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32) and batch[1].tolist() == c.labels[:4].tolist()


def test_cache_round_trip(fake_root, tmp_path, monkeypatch):
    first = make_canvas("train", 12, 40, seed=5, root=fake_root, cache_dir=tmp_path)
    assert first.path is not None and first.path.parent == tmp_path and first.path.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(cv, "generate_canvas", fail)
    second = make_canvas("train", 12, 40, seed=5, root=fake_root, cache_dir=tmp_path, channels=3)
    assert second.path == first.path and second.params == first.params and second.channels == 3
    for name in ("pixels", "labels", "boxes", "regions", "masks", "sources", "clutter_boxes"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    # another parameter, another file
    monkeypatch.undo()
    other = make_canvas("train", 12, 40, seed=6, root=fake_root, cache_dir=tmp_path)
    assert other.path != first.path and len(list(tmp_path.glob("*.pt"))) == 2


def test_cache_key_covers_every_parameter():
    base = cv.canvas_params("train", 10, 64, 0)
    keys = {cv.canvas_key(base)}
    for change in ({"split": "test"}, {"n": 11}, {"size": 65}, {"seed": 1}, {"scale": (0.9, 1.0)},
                   {"n_clutter": 3}, {"clutter_size": 7}, {"noise": 0.2}):
        args = {"split": "train", "n": 10, "size": 64, "seed": 0, **change}
        keys.add(cv.canvas_key(cv.canvas_params(args.pop("split"), args.pop("n"), args.pop("size"),
                                                args.pop("seed"), **args)))
    assert len(keys) == 9
    assert cv.canvas_key(base) == cv.canvas_key(cv.canvas_params("train", 10, 64, 0))


def test_atomic_write_leaves_no_partial_file(fake_root, tmp_path, monkeypatch):
    c = generate_canvas("train", 4, 32, seed=0, root=fake_root)
    target = tmp_path / "out.pt"

    def broken_save(obj, path):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_canvas(c, target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_canvas(c, target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]
    assert torch.equal(load_canvas(target).pixels, c.pixels)


def test_load_rejects_other_files(tmp_path):
    torch.save({"pixels": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a canvas dataset"):
        load_canvas(tmp_path / "x.pt")


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "val"}, "split"),
    ({"n": 0}, "n must be"),
    ({"n": N_ITEMS + 1}, "exceeds"),
    ({"size": 20}, "do not fit"),
    ({"scale": (1.0, 2.5)}, "do not fit"),
    ({"scale": (1.2, 1.0)}, "scale must be"),
    ({"clutter_size": 30}, "clutter_size"),
    ({"noise": 1.5}, "noise"),
    ({"n_clutter": -1}, "n_clutter"),
])
def test_bad_parameters(fake_root, kwargs, match):
    args = {"split": "train", "n": 4, "size": 64, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_canvas(args.pop("split"), args.pop("n"), args.pop("size"), args.pop("seed"), root=fake_root,
                        **args)


def test_bad_channels(fake_root, tmp_path):
    with pytest.raises(ValueError, match="channels"):
        CanvasSet(*(torch.zeros(1),) * 7, params={}, channels=2)
    with pytest.raises(ValueError, match="channels"):
        make_canvas("train", 4, 32, root=fake_root, cache_dir=tmp_path, channels=4)


def test_clutter_needs_every_class(tmp_path):
    images_stem, labels_stem = SPLITS["train"]
    write_idx(tmp_path / f"{images_stem}.gz", torch.stack([_item(0), _item(1)]))
    write_idx(tmp_path / f"{labels_stem}.gz", torch.tensor([0, 1], dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"none of class\(es\) \[2, 3, 4, 5, 6, 7, 8, 9\]"):
        generate_canvas("train", 2, 40, root=tmp_path)
    assert len(generate_canvas("train", 2, 40, n_clutter=0, root=tmp_path)) == 2


def test_item_boxes_known_answer():
    items = torch.zeros(2, 5, 6, dtype=torch.uint8)
    items[0, 1, 2] = items[0, 3, 4] = 7  # pixels (x=2, y=1) and (x=4, y=3)
    # item 1 is blank: its box is the whole item
    assert cv._item_boxes(items).tolist() == [[2, 1, 5, 4], [0, 0, 6, 5]]


def test_default_canvas_uses_the_cache_folder(fake_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_FASHION_MNIST", str(fake_root))
    monkeypatch.setenv("CAMREPRO_DATA", str(tmp_path))
    monkeypatch.setattr(cv, "DEFAULT_CANVAS", {"train": {"split": "train", "n": 8, "size": 36, "seed": 0}})
    c = cv.default_canvas("train", channels=3)
    assert c.path.parent == tmp_path / "canvas" and c.images.shape == (8, 3, 36, 36)
    with pytest.raises(ValueError, match="unknown default canvas"):
        cv.default_canvas("val")


def test_item_filling_the_canvas_gets_no_clutter(fake_root):
    c = generate_canvas("train", 5, 30, seed=0, n_clutter=2, clutter_size=8, noise=0.0, root=fake_root)
    assert (c.clutter_boxes == -1).all()
    for i in range(5):
        assert c.pixels[i, 0].bool().sum() == c.masks[i].sum() == 16 * 12


@pytest.mark.slow
def test_real_fashion_mnist_canvas():
    from camrepro.data.fashion_mnist import DEBIAN_DIR, find_folder

    try:
        find_folder("test")
    except FileNotFoundError:
        pytest.skip(f"Fashion-MNIST not installed ({DEBIAN_DIR})")
    c = generate_canvas("test", 500, 64, seed=0, scale=(0.8, 1.4))
    assert c.masks.flatten(1).any(1).all()
    x0, y0, x1, y1 = c.boxes.unbind(1)
    rx0, ry0, rx1, ry1 = c.regions.unbind(1)
    assert ((rx0 <= x0) & (x0 < x1) & (x1 <= rx1) & (ry0 <= y0) & (y0 < y1) & (y1 <= ry1)).all()
    cx0, cy0, cx1, cy1 = c.clutter_boxes.unbind(-1)
    placed = cx0 >= 0
    disjoint = (cx1 <= rx0[:, None]) | (cx0 >= rx1[:, None]) | (cy1 <= ry0[:, None]) | (cy0 >= ry1[:, None])
    assert (disjoint | ~placed).all() and placed.float().mean() > 0.99
