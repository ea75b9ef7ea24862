"""User-provided folders: ImageFolder trees and flat folders with a labels file, generated with PIL."""

import pytest
import torch
from PIL import Image

import camrepro  # noqa: F401
from camrepro.data.folders import image_folder, imagenet_val, read_labels_file


def _save(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_tree(tmp_path):
    _save(tmp_path / "dog" / "b.png", (255, 0, 0))
    _save(tmp_path / "dog" / "a.png", (0, 255, 0))
    _save(tmp_path / "cat" / "x.jpeg", (0, 0, 255))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    ds = image_folder(tmp_path, size=16)
    assert ds.classes == ["cat", "dog", "empty"]
    assert [(p.name, label) for p, label in ds.samples] == [("x.jpeg", 0), ("a.png", 1), ("b.png", 1)]
    assert len(ds) == 3 and ds.targets == [0, 1, 1]
    image, label = ds[1]
    assert image.shape == (3, 16, 16) and label == 1
    torch.testing.assert_close(image[:, 5, 5], torch.tensor([0.0, 1.0, 0.0]))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch[0].shape == (3, 3, 16, 16) and batch[1].tolist() == [0, 1, 1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}.*one sub-folder per class"):
        image_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        image_folder(tmp_path)


def test_imagenet_val_flat_folder(tmp_path):
    _save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", (10, 20, 30))
    _save(tmp_path / "val" / "ILSVRC2012_val_00000002.JPEG", (255, 255, 255))
    _save(tmp_path / "val" / "unlisted.png", (0, 0, 0))
    labels = tmp_path / "labels.txt"
    labels.write_text("# file label\nILSVRC2012_val_00000002.JPEG 65\n\nILSVRC2012_val_00000001.JPEG 970\n")
    ds = imagenet_val(tmp_path / "val", labels, size=8)
    assert len(ds) == 2 and ds.targets == [65, 970] and len(ds.classes) == 971
    image, label = ds[0]
    assert image.shape == (3, 8, 8) and label == 65
    assert image.min() > 0.98  # white (JPEG round trip)


def test_imagenet_val_errors(tmp_path):
    (tmp_path / "val").mkdir()
    labels = tmp_path / "labels.txt"
    labels.write_text("a.png 1\n")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing'}.*validation images"):
        imagenet_val(tmp_path / "missing", labels)
    with pytest.raises(FileNotFoundError, match="labels file .* does not exist"):
        imagenet_val(tmp_path / "val", tmp_path / "none.txt")
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed .* e\.g\. \['a\.png'\]"):
        imagenet_val(tmp_path / "val", labels)


@pytest.mark.parametrize("text, match", [
    ("a.png\n", ":1: expected"),
    ("a.png 1\nb.png x\n", ":2: expected"),
    ("a.png -1\n", "negative"),
    ("a.png 1\na.png 2\n", "listed twice"),
    ("# only a comment\n", "lists no images"),
])
def test_labels_file_errors(tmp_path, text, match):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_labels_file(path)


def test_labels_file_known_answer(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("  x.jpg   3 \n# c\ny.jpg 0\n")
    assert read_labels_file(path) == [("x.jpg", 3), ("y.jpg", 0)]
