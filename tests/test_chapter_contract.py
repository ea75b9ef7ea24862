"""The chapter contract: typed parameters, cached units, claims; the registry; the map store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from camrepro import evidence, methods
from camrepro.experiments import registry
from camrepro.experiments.chapter import Chapter, Unit
from camrepro.experiments.kit import images as kit_images
from camrepro.experiments.kit import maps as kit_maps
from camrepro.experiments.kit import metric_tables, timing
from camrepro.experiments.schema import Param, Schema

SCHEMA = Schema("toy", {
    "n_images": Param(4, int, minimum=1),
    "steps": Param(8, int, minimum=1),
    "lr": Param(0.1, float, minimum=0),
    "methods": Param(["grad-cam"], list, item=str, choices=("grad-cam", "cam"), min_length=1),
    "options": Param({}, dict),
    "nested": Schema("nested", {"images": Param(2, int, minimum=0), "model": Param("m", str)}),
})


def test_schema_merges_profile_then_overrides_key_by_key_in_nested_sections():
    params = SCHEMA.resolve({"n_images": 6, "nested": {"images": 3}}, {"nested": {"model": "x"}})
    assert params == {"n_images": 6, "steps": 8, "lr": 0.1, "methods": ["grad-cam"], "options": {},
                      "nested": {"images": 3, "model": "x"}}
    assert SCHEMA.resolve(params) == params                      # resolving twice changes nothing


@pytest.mark.parametrize("bad, error, message", [
    ({"n_imags": 1}, ValueError, r"unknown toy parameter\(s\) \['n_imags'\]; the known ones are \['lr', 'methods'"),
    ({"nested": {"imags": 1}}, ValueError, r"unknown toy.nested parameter\(s\) \['imags'\]"),
    ({"steps": 0}, ValueError, r"toy.steps must be ≥ 1, got 0"),
    ({"n_images": -3}, ValueError, r"toy.n_images must be ≥ 1, got -3"),
    ({"n_images": "3"}, TypeError, r"toy.n_images must be an int, got '3'"),
    ({"n_images": True}, TypeError, r"toy.n_images must be an int, got True"),
    ({"n_images": 2.0}, TypeError, r"toy.n_images must be an int"),
    ({"lr": "0.1"}, TypeError, r"toy.lr must be a number"),
    ({"methods": ["grad-cam", "score-cam"]}, ValueError, r"toy.methods\[1\] must be one of"),
    ({"methods": []}, ValueError, r"at least 1 item"),
    ({"nested": 3}, TypeError, r"toy.nested parameters must be a mapping"),
])
def test_schema_errors_name_the_chapter_the_key_and_the_value(bad, error, message):
    with pytest.raises(error, match=message):
        SCHEMA.resolve(bad)


def test_ints_are_accepted_as_floats():
    assert SCHEMA.resolve({"lr": 1})["lr"] == 1.0


def test_image_schema_requires_a_root_for_folder_sources():
    schema = Schema("c", {"images": kit_images.image_schema(n=4)})
    with pytest.raises(ValueError, match="needs root"):
        schema.resolve({"images": {"source": "image-folder"}})
    with pytest.raises(ValueError, match="read only for the folder sources"):
        schema.resolve({"images": {"root": "/tmp"}})


def _toy_chapter(calls: list[str]) -> Chapter:
    def units(p):
        def compute(device):
            calls.append(device)
            rng = np.random.default_rng(0)
            base = rng.uniform(0, 10, p["n_images"])
            return {"scores": pd.DataFrame({"image": [f"p{i}" for i in range(p["n_images"])],
                                            "ours": base + 5, "theirs": base})}
        return [Unit("scores", {"n": p["n_images"]}, compute, per_image=True)]

    def claims_from(results, p):
        t = results.table("scores")
        return [evidence.Claim("better", "Opti-CAM", "toy", "ours beats theirs", "—", "—", "mean difference > 0",
                               (evidence.condition("ours vs theirs", t["image"], t["ours"], t["theirs"],
                                                   rule=evidence.Rule(0.0), a_label="ours", b_label="theirs"),))]
    return Chapter("toy", "A toy chapter", SCHEMA, units, claims_from, paper="Opti-CAM")


def test_chapter_runs_units_through_the_cache_and_decides_its_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    calls: list[str] = []
    chapter = _toy_chapter(calls)
    params = chapter.params(overrides={"n_images": 6})
    first = chapter.run(params)
    again = chapter.run(params)
    assert calls == ["cpu"] and again["scores"].from_cache and not first["scores"].from_cache
    claims = chapter.claims(params)
    assert [c.verdict for c in claims] == [evidence.REPRODUCED] and claims[0].n == "6"
    with pytest.raises(ValueError, match=r"no unit\(s\) \['nope'\]"):
        chapter.run(params, only=["nope"])
    with pytest.raises(KeyError, match="no unit 'nope'"):
        first["nope"]


def test_registry_lists_the_book_chapters_and_refuses_others():
    assert registry.names() == ["lficam", "liftcam", "afmi", "opticam", "benchmark"]
    with pytest.raises(ValueError, match="unknown chapter 'nope'; the chapters are"):
        registry.get("nope")


def test_every_registered_chapter_implements_the_contract_and_its_profiles_resolve():
    for name in registry.names():
        chapter = registry.get(name)
        assert chapter.name == name
        for profile in ("smoke", "book", "paper"):
            chapter.params(profile)                              # every key known, every value valid


def test_the_chapters_book_budgets_leave_room_for_the_report_and_the_html_in_45_minutes():
    # the book must build in 45 minutes on 2 CPU cores; report, colophon and HTML took ~45 s (measured)
    budgets = [registry.get(name).budgets.get("book") for name in registry.names()]
    assert all(budget and budget > 0 for budget in budgets)
    assert sum(budgets) <= 45 * 60 - 120


CODE = "a-fixed-source-hash"   # the package's own hash changes whenever its source does


def test_map_store_computes_each_map_once_and_a_second_user_reads_it(tmp_path, linear_tail_net):
    net = linear_tail_net.eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2])
    cam = methods.get("grad-cam")(net, layer="features")
    first = kit_maps.MapStore(cam, "tiny", "grad-cam", root=tmp_path, code=CODE).get(x, targets,
                                                                                     weights=True)
    assert first.computed == 3 and first.maps.shape == (3, 8, 8) and first.weights.shape == (3, 3)
    torch.testing.assert_close(first.maps, cam(x, targets))
    # another chapter, another explainer object of the same method at the same layer: read, not computed
    other = kit_maps.MapStore(methods.get("grad-cam")(net, layer="features"), "tiny", "grad-cam", root=tmp_path,
                              code=CODE)
    second = other.get(x[1:], targets[1:], weights=True)
    assert second.computed == 0
    torch.testing.assert_close(second.maps, first.maps[1:])
    # a new image, a new target or new options: computed
    assert other.get(x[:1], torch.tensor([3])).computed == 1
    # the same image under other options is another map, counted apart
    other_options = kit_maps.MapStore(methods.get("grad-cam")(net, layer="features"), "tiny", "grad-cam",
                                      {"note": "other"}, root=tmp_path, code=CODE)
    assert other_options.get(x[:1], targets[:1]).computed == 1
    counts = kit_maps.computation_counts(tmp_path)
    assert len(counts) == 5 and set(counts.values()) == {1}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_map_store_keys_separate_code_versions_and_flag_all_zero_maps(tmp_path, linear_tail_net):
    net = linear_tail_net.eval()
    x = torch.zeros(1, 3, 8, 8)                                    # a black image: every activation is 0
    cam = methods.get("grad-cam")(net, layer="features")
    stored = kit_maps.MapStore(cam, "tiny", "grad-cam", root=tmp_path, code=CODE).get(x, [0])
    assert stored.all_zero.tolist() == [True]
    newer = kit_maps.MapStore(cam, "tiny", "grad-cam", root=tmp_path, code="another-source-hash")
    assert newer.get(x, [0]).computed == 1


def test_paired_keeps_only_the_units_both_methods_ran_on():
    table = pd.DataFrame({"method": ["a", "a", "a", "b", "b"], "image": ["1", "2", "3", "1", "3"],
                          "AG": [1.0, 2.0, 3.0, 0.5, 1.0]})
    pairs = metric_tables.paired(table, "AG", "a", "b")
    assert pairs["image"].tolist() == ["1", "3"] and pairs["a"].tolist() == [1.0, 3.0]


def test_per_image_faithfulness_terms_average_to_the_metric():
    from camrepro import metrics

    p = np.array([0.9, 0.5, 0.2, 0.7])
    o = np.array([0.3, 0.6, 0.2, 0.9])
    rows = metric_tables.drop_increase_gain_per_image(p, o)
    assert rows["AD"].mean() == pytest.approx(metrics.average_drop(p, o))
    assert rows["AI"].mean() == pytest.approx(metrics.average_increase(p, o))
    assert rows["AG"].mean() == pytest.approx(metrics.average_gain(p, o))


def test_interleaved_timing_gives_one_row_per_round_and_call_and_paired_ratios():
    times = timing.interleaved({"ours": lambda: sum(range(100)), "ref": lambda: sum(range(10))}, rounds=3)
    assert len(times) == 6 and set(times["call"]) == {"ours", "ref"}
    summary = timing.ratio_summary(times, "ours", "ref")
    assert summary["rounds"] == 3 and summary["q25"] <= summary["median"] <= summary["q75"]
