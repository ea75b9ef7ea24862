"""camrepro._torchvision_compat: torchvision imports next to a CPU torch, and says so honestly when an
operator of its missing extension is called."""

from __future__ import annotations

import torch

import camrepro
from camrepro import _torchvision_compat as compat


def test_import_works_and_models_build():
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None, num_classes=3).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_nms_is_a_clear_runtime_error_or_the_right_answer():
    import torchvision

    # boxes 0 and 1 overlap with IoU 81 / 119 = 0.68 > 0.5, box 2 overlaps neither: keep 0 and 2
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    if compat._extension_loads():
        assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
        return
    try:
        torchvision.ops.nms(boxes, scores, 0.5)
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("nms ran without torchvision's extension")
    assert "Couldn't load custom C++ ops" in message  # torchvision's own explanation, not an import failure
    # the operator itself exists (its schema is declared) and has no kernel: a RuntimeError naming it
    try:
        torch.ops.torchvision.nms(boxes, scores, 0.5)
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("torchvision::nms ran without a kernel")
    assert "Could not run 'torchvision::nms'" in message
    assert "does not exist" not in message


def test_ensure_is_idempotent():
    first = compat.ensure_torchvision_importable()
    library = compat._LIBRARY
    assert compat.ensure_torchvision_importable() is first
    assert compat.ensure_torchvision_importable() is first
    assert compat._LIBRARY is library  # nothing was defined twice
    assert first is (not compat._extension_loads())
    assert camrepro.__version__
