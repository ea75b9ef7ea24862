"""Fashion-MNIST idx reader: hand-written idx bytes, magic-number checks, folder search, the real files."""

import gzip
from pathlib import Path

import pytest
import torch

import camrepro  # noqa: F401
from camrepro.data import fashion_mnist as fm
from camrepro.data.fashion_mnist import (
    CLASSES, IMAGES_MAGIC, LABELS_MAGIC, load_fashion_mnist, parse_idx, read_idx, write_idx,
)

# 2 images of 2×3 unsigned bytes: magic 0x00000803, dims 2, 2, 3, then 12 bytes of data.
TINY_IMAGES = (bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
               + (3).to_bytes(4, "big") + bytes(range(12)))
TINY_LABELS = bytes([0, 0, 0x08, 1]) + (2).to_bytes(4, "big") + bytes([7, 9])


def test_parse_idx_known_bytes():
    out = parse_idx(TINY_IMAGES, IMAGES_MAGIC)
    assert out.dtype == torch.uint8 and out.shape == (2, 2, 3)
    assert out[1].tolist() == [[6, 7, 8], [9, 10, 11]]
    assert parse_idx(TINY_LABELS, LABELS_MAGIC).tolist() == [7, 9]


def test_parse_idx_big_endian_int32_and_float():
    minus_two = (-2).to_bytes(4, "big", signed=True)
    data = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") + minus_two
    out = parse_idx(data)
    assert out.dtype == torch.int32 and out.tolist() == [1, -2]
    floats = bytes([0, 0, 0x0D, 1]) + (1).to_bytes(4, "big") + bytes.fromhex("3fc00000")  # 1.5 in IEEE-754
    assert parse_idx(floats).tolist() == [1.5]


@pytest.mark.parametrize("data, match", [
    (TINY_LABELS, "magic number is 0x00000801, expected 0x00000803"),
    (bytes([1, 0, 0x08, 1]) + (1).to_bytes(4, "big") + b"\x00", "two zero bytes"),
    (bytes([0, 0, 0x07, 1]) + (1).to_bytes(4, "big") + b"\x00", "unknown idx type"),
    (TINY_IMAGES[:-1], "payload has 11 bytes"),
    (TINY_IMAGES + b"\x00", "payload has 13 bytes"),
    (b"\x00\x00", "too short"),
    (bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big"), "declares 3 dimensions"),
])
def test_parse_idx_rejects(data, match):
    expected = IMAGES_MAGIC if data is TINY_LABELS else None
    with pytest.raises(ValueError, match=match):
        parse_idx(data, expected)


def test_read_idx_gzip_by_content(tmp_path):
    plain = tmp_path / "a-idx3-ubyte"
    plain.write_bytes(TINY_IMAGES)
    packed = tmp_path / "b.bin"  # no .gz suffix: recognised by the gzip magic bytes
    packed.write_bytes(gzip.compress(TINY_IMAGES))
    assert torch.equal(read_idx(plain), read_idx(packed))
    with pytest.raises(ValueError, match=str(packed)):
        read_idx(packed, LABELS_MAGIC)


def test_write_idx_round_trip_and_bytes(tmp_path):
    images = torch.arange(12, dtype=torch.uint8).reshape(2, 2, 3)
    assert write_idx(tmp_path / "x", images).read_bytes() == TINY_IMAGES
    for tensor in (images, torch.tensor([[1, -300], [7, 2]], dtype=torch.int16), torch.tensor([0.25, -1.0])):
        assert torch.equal(read_idx(write_idx(tmp_path / "t.gz", tensor)), tensor)
    with pytest.raises(TypeError, match="no type"):
        write_idx(tmp_path / "y", torch.zeros(2, dtype=torch.int64))


def _fake_root(folder: Path, split: str = "train", n: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images_stem, labels_stem = fm.SPLITS[split]
    write_idx(folder / f"{images_stem}.gz", torch.arange(n * 784, dtype=torch.int64).remainder(251)
              .to(torch.uint8).reshape(n, 28, 28))
    write_idx(folder / f"{labels_stem}.gz", (torch.arange(n) % 10).to(torch.uint8))
    return folder


def test_load_from_root(tmp_path):
    data = load_fashion_mnist("test", root=_fake_root(tmp_path, "test", 4))
    assert data.images.shape == (4, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 1, 2, 3] and data.labels.dtype == torch.int64
    assert data.images[0, 0, :3].tolist() == [0, 1, 2] and data.classes == CLASSES and len(data) == 4
    data.images.zero_()  # callers get copies: the in-memory cache is untouched
    assert load_fashion_mnist("test", root=tmp_path).images[0, 0, 1] == 1


def test_environment_variable_is_searched(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(_fake_root(tmp_path / "env", "train", 3)))
    assert fm.candidate_folders()[0] == tmp_path / "env"
    assert len(load_fashion_mnist("train")) == 3


def test_missing_files_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="make data.*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path / "nowhere")
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("CAMREPRO_DATA", str(tmp_path / "raw"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)

    def no_network(split):
        raise AssertionError("must not download without download=True")

    monkeypatch.setattr(fm, "_download", no_network)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "no-debian")):
        load_fashion_mnist("test")


def test_download_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("CAMREPRO_DATA", str(tmp_path / "raw"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    calls = []

    def fake_download(split):
        calls.append(split)
        return _fake_root(tmp_path / "raw" / "FashionMNIST" / "raw", split, 2)

    monkeypatch.setattr(fm, "_download", fake_download)
    assert len(load_fashion_mnist("train", download=True)) == 2 and calls == ["train"]
    # the downloaded copy is found by the normal search afterwards, without downloading again
    assert len(load_fashion_mnist("train")) == 2 and calls == ["train"]


def test_mismatched_counts(tmp_path):
    _fake_root(tmp_path, "train", 3)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", torch.zeros(2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_fashion_mnist("train", root=tmp_path)


def test_bad_split():
    with pytest.raises(ValueError, match="unknown Fashion-MNIST split"):
        load_fashion_mnist("validation")


@pytest.mark.slow
@pytest.mark.skipif(not (fm.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_debian_files():
    test = load_fashion_mnist("test", root=fm.DEBIAN_DIR)
    assert test.images.shape == (10000, 28, 28) and test.labels.bincount().tolist() == [1000] * 10
    # the first test item of Fashion-MNIST is an ankle boot, the first training item too
    assert CLASSES[int(test.labels[0])] == "Ankle boot"
    train = load_fashion_mnist("train", root=fm.DEBIAN_DIR)
    assert train.images.shape == (60000, 28, 28) and int(train.labels[0]) == 9
    assert train.labels.bincount().tolist() == [6000] * 10
