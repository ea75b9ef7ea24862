"""The parameter checks shared by the chapters (camrepro.experiments.parameters)."""

from __future__ import annotations

import pytest

from camrepro.experiments.parameters import check_count, check_models, check_required


def test_check_count_accepts_ints_from_the_minimum_and_names_the_key_otherwise():
    assert check_count("opticam", "data.n", 0) == 0
    assert check_count("opticam", "data.n", 5, 5) == 5
    for bad in (4, True, 5.0, "5", None):
        with pytest.raises(ValueError, match=r"opticam parameter data.n must be an int ≥ 5, got"):
            check_count("opticam", "data.n", bad, 5)


def test_check_required_names_the_missing_keys_and_the_profile_section():
    check_required("afmi", {"a": 1, "b": 2}, ("a", "b"))
    with pytest.raises(ValueError, match=r"afmi parameters lack \['b'\]; see the afmi section"):
        check_required("afmi", {"a": 1}, ("a", "b"))
    with pytest.raises(TypeError, match="afmi parameters must be a mapping, got list"):
        check_required("afmi", ["a"], ("a",))


def test_check_models_refuses_unknown_and_empty_lists():
    check_models("liftcam", "models", ["mobilenet_v2", "efficientnet_lite0"])
    with pytest.raises(ValueError, match=r"unknown models \['vgg-17'\]"):
        check_models("liftcam", "models", ["mobilenet_v2", "vgg-17"])
    for empty in ([], "mobilenet_v2", None):
        with pytest.raises(ValueError, match="liftcam parameter 'models' must list models"):
            check_models("liftcam", "models", empty)
