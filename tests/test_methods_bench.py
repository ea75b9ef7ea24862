"""The benchmark runner (src/camrepro/bench.py): the timing with a fake clock; the table on a tiny net."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from conftest import LAYER, make_linear_tail_net

from camrepro import bench
from camrepro.experiments.kit import timing


class FakeClock:
    """A clock that a fake method advances by ``cost`` seconds per image it is given."""

    def __init__(self, cost: float):
        self.now = 0.0
        self.cost = cost
        self.calls: list[int] = []

    def __call__(self) -> float:
        return self.now

    def run(self, x: torch.Tensor, _targets: torch.Tensor) -> None:
        self.calls.append(x.shape[0])
        self.now += self.cost * x.shape[0]


def test_seconds_per_call_is_the_median_of_the_repeats():
    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # calls of 1 s, 3 s and 2 s
    assert bench.seconds_per_call(lambda: None, 3, torch.device("cpu"), clock=lambda: next(ticks)) == 2.0
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        bench.seconds_per_call(lambda: None, 0, torch.device("cpu"))


def test_a_method_is_expensive_when_its_probe_costs_more_forward_passes_than_the_threshold():
    images, targets = torch.zeros(16, 3, 4, 4), torch.zeros(16, dtype=torch.long)
    budget = bench.Budget(repeats=3, warmup=2, expensive_forwards=10.0, expensive_images=2, expensive_repeats=1)
    # a forward pass of one image takes 0.1 s: the threshold is 1 s
    cheap, costly = FakeClock(cost=0.25), FakeClock(cost=6.0)  # 6 s: above 5 × the threshold, no second call
    assert not bench.probe_is_expensive(cheap.run, images, targets, budget, 0.1, clock=cheap)
    assert bench.probe_is_expensive(costly.run, images, targets, budget, 0.1, clock=costly)
    assert cheap.calls == [1] and costly.calls == [1]
    # the same method on a machine ten times slower (forward passes of 1 s) is not expensive: passes are counted
    slow = FakeClock(cost=6.0)
    assert not bench.probe_is_expensive(slow.run, images, targets, budget, 1.0, clock=slow)
    with pytest.raises(ValueError, match="forward_seconds must be positive"):
        bench.probe_is_expensive(cheap.run, images, targets, budget, 0.0, clock=cheap)


def test_a_slow_first_call_is_confirmed_before_a_method_is_called_expensive():
    clock = FakeClock(cost=0.25)
    first = [True]

    def run(x, t):
        clock.run(x, t)
        if first[0]:  # the first call pays a one-time cost of 3 s
            clock.now += 3.0
            first[0] = False

    images, targets = torch.zeros(4, 3, 4, 4), torch.zeros(4, dtype=torch.long)
    budget = bench.Budget(repeats=1, warmup=0, expensive_forwards=10.0, expensive_images=2, expensive_repeats=1)
    assert not bench.probe_is_expensive(run, images, targets, budget, 0.1, clock=clock)
    assert clock.calls == [1, 1]


def rounds_table(seconds: dict[str, list[float]], load: float = 1.0) -> pd.DataFrame:
    """An interleaved timing table (round, call, seconds, load) with the given seconds per call and round."""
    rows = [{"round": r, "call": call, "seconds": value, "load": load}
            for call, values in seconds.items() for r, value in enumerate(values)]
    return pd.DataFrame(rows).sort_values(["round"], kind="stable").reset_index(drop=True)


def test_rows_are_medians_of_per_round_ratios_with_their_spread():
    times = rounds_table({"forward": [1.0, 2.0, 1.0, 4.0], "ours": [1.1, 2.2, 1.1, 4.4],
                          "theirs": [3.3, 6.6, 3.3, 13.2]}, load=1.5)
    row = bench.summarise_rounds(times)
    # each round's ratio is exact although the machine's speed changes 4-fold between rounds
    assert row["ours_in_forwards"] == pytest.approx(1.1) and row["ours_in_forwards_q25"] == pytest.approx(1.1)
    assert row["ratio"] == pytest.approx(3.0) and row["ours_over_floor"] == pytest.approx(1.1)
    assert row["ours_s"] == pytest.approx(1.65) and row["rounds"] == 4
    assert row["unstable"] == "" and row["load_mean"] == 1.5 and row["load_max"] == 1.5


def test_a_ratio_whose_spread_is_wider_than_its_value_is_flagged():
    # theirs / ours per round: 0.2, 3, 0.5, 4 → median 1.75, 25-75 % spread 0.43-3.25 (width 2.8 > 1.75)
    times = rounds_table({"forward": [1.0] * 4, "ours": [1.0] * 4, "theirs": [0.2, 3.0, 0.5, 4.0]})
    row = bench.summarise_rounds(times)
    assert row["unstable"] == "ratio"
    assert row["ratio_q75"] - row["ratio_q25"] > row["ratio"]
    assert "ratio" in bench.format_table(pd.DataFrame([{
        "method": "m", "batch": 1, "ours_s_per_image": 1.0, "theirs_s_per_image": 1.0, "forward_s_per_image": 1.0,
        "floor_s_per_image": math.nan, "ratio": row["ratio"], "ratio_q25": row["ratio_q25"],
        "ratio_q75": row["ratio_q75"], "ours_in_forwards": 1.0, "ours_over_floor": math.nan,
        "ours_images": 1, "rounds": 4, "load_mean": 1.0, "unstable": row["unstable"]}]))
    assert not timing.spread_is_wider_than_value(0.9, 1.0, 1.8)   # width 0.9 < 1.0
    assert timing.spread_is_wider_than_value(0.5, 1.0, 1.6)       # width 1.1 > 1.0
    summary = timing.ratio_summary(times, "theirs", "ours")
    assert summary["unstable"] and summary["median"] == pytest.approx(1.75)


def test_no_floor_no_floor_ratio_and_opti_cams_floor_counts_its_iterations():
    times = rounds_table({"forward": [1.0, 1.0], "ours": [5.0, 7.0], "floor": [0.05, 0.05]})
    row = bench.summarise_rounds(times, multiplier=100.0, floor="floor")
    assert row["floor_s"] == pytest.approx(5.0) and row["ours_over_floor"] == pytest.approx(1.2)
    row = bench.summarise_rounds(times, floor=None)
    assert math.isnan(row["ours_over_floor"]) and row["unstable"] == ""


def test_interleaved_calls_alternate_round_by_round_with_a_fake_clock():
    order: list[str] = []
    now = [0.0]

    def call(name, cost):
        def run():
            order.append(name)
            now[0] += cost
        return run

    times = timing.interleaved({"forward": call("forward", 1.0), "ours": call("ours", 2.0)}, rounds=3,
                               per_call=2, warmup=False, clock=lambda: now[0], load=lambda: 0.5)
    assert order == ["forward", "ours", "ours", "forward", "forward", "ours"]  # the order rotates
    assert times.seconds.tolist() == [0.5, 1.0, 1.0, 0.5, 0.5, 1.0] and (times.load == 0.5).all()
    assert times["round"].tolist() == [0, 0, 1, 1, 2, 2]


def test_the_table_on_a_tiny_network_compares_with_pytorch_grad_cam():
    pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    logged: list[str] = []
    table = bench.run_benchmark(
        make_linear_tail_net(),
        LAYER,
        images,
        ["grad-cam", "fake-cam", "attention"],
        batch_sizes=(1, 2),
        budget=bench.Budget(repeats=1, warmup=0),
        log=logged.append,
    )
    assert list(table.columns) == bench.COLUMNS
    assert table[["method", "batch"]].values.tolist() == [
        ["grad-cam", 1],
        ["grad-cam", 2],
        ["fake-cam", 1],
        ["fake-cam", 2],
        ["attention", 1],
        ["attention", 2],
    ]
    grad = table[table.method == "grad-cam"]
    assert (grad.theirs_s_per_image > 0).all() and (grad.ours_s_per_image > 0).all()
    pd.testing.assert_series_equal(
        grad.ratio, grad.theirs_s_per_image / grad.ours_s_per_image, check_names=False
    )
    pd.testing.assert_series_equal(
        grad.ours_in_forwards, grad.ours_s_per_image / grad.forward_s_per_image, check_names=False
    )
    assert grad.passes_formula.tolist() == ["1 forward + 1 backward (tail)"] * 2
    assert grad.ours_images.tolist() == [1, 2] and grad.theirs_images.tolist() == [1, 2]
    fake = table[table.method == "fake-cam"]
    assert (
        fake.theirs_s_per_image.isna().all() and fake.ratio.isna().all() and (fake.theirs_images == 0).all()
    )
    attention = table[table.method == "attention"]
    assert attention.ours_s_per_image.isna().all()
    assert attention.note.str.startswith("not applicable").all()
    assert any(line.startswith("attention: not applicable") for line in logged)
    text = bench.format_table(table)
    assert "grad-cam" in text and "note" not in text


def test_the_command_line_is_checked():
    args = bench.parse_args([])
    assert args.batch_sizes == [1, 16] and args.model == "mobilenet_v2" and args.expensive_images == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--methods", "grad-kam"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeats", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-sizes", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--expensive-forwards", "0"])


@pytest.mark.slow
def test_main_writes_the_csv(tmp_path, capsys):
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--methods",
                "fake-cam",
                "cam",
                "--batch-sizes",
                "1",
                "2",
                "--repeats",
                "1",
                "--size",
                "64",
                "--no-compare",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "bench-cpu.csv")
    assert table.method.tolist() == ["fake-cam", "fake-cam", "cam", "cam"]
    assert not math.isnan(table.forward_s_per_image.iloc[0])
    assert "written to" in capsys.readouterr().out


def count_mask_gradient_images(monkeypatch) -> list[int]:
    """The batch size of every call of Opti-CAM's floor pass from now on (the pass itself still runs)."""
    from camrepro.methods import opti_cam

    calls: list[int] = []
    real = opti_cam.mask_gradient

    def counted(model, x, masks, targets, space="pixel"):
        calls.append(x.shape[0])
        return real(model, x, masks, targets, space)

    monkeypatch.setattr(opti_cam, "mask_gradient", counted)
    return calls


def test_floors_are_the_forward_pass_and_opti_cams_iterations_of_mask_gradient(monkeypatch):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    net = make_linear_tail_net()
    calls = count_mask_gradient_images(monkeypatch)
    table = bench.run_benchmark(
        net, LAYER, images, ["grad-cam", "opti-cam", "score-cam", "ablation-cam"], batch_sizes=(1, 2),
        budget=bench.Budget(repeats=1, warmup=0), compare=False,
    )
    grad = table[table.method == "grad-cam"]
    assert (grad.floor_s_per_image > 0).all()
    assert grad.floor_passes.tolist() == ["1 forward + 1 backward (tail)"] * 2
    pd.testing.assert_series_equal(
        grad.ours_over_floor, grad.ours_s_per_image / grad.floor_s_per_image, check_names=False
    )
    opti = table[table.method == "opti-cam"]
    assert (opti.floor_s_per_image > 0).all() and (opti.ours_over_floor > 0).all()
    # the floor is timed on as many images as Opti-CAM was, once per batch size
    assert calls == opti.ours_images.tolist()
    for name in ("score-cam", "ablation-cam"):  # one network or tail pass per channel: no floor timed
        rows = table[table.method == name]
        assert rows.floor_s_per_image.isna().all() and rows.ours_over_floor.isna().all()


def test_floor_call_of_opti_cam_is_one_masked_pass_counted_iterations_times():
    images = torch.rand(3, 3, 8, 8)
    net = make_linear_tail_net()
    floor = bench.floor_call("opti-cam", net, LAYER, images, torch.zeros(3, dtype=torch.long))
    assert floor.count == 100.0 and floor.call().shape == (3, 8, 8)
    # the bench runs Opti-CAM at its own iteration count, and the floor counts the same
    floor = bench.floor_call("opti-cam", net, LAYER, images, torch.zeros(3, dtype=torch.long), {"iterations": 20})
    assert floor.count == 20.0 == bench.BENCH_OPTIONS["opti-cam"]["iterations"]
    assert floor.passes == "20 x (masked forward + backward)"
    assert bench.floor_call("score-cam", net, LAYER, images, torch.zeros(3, dtype=torch.long)) is None


def test_the_grad_cam_familys_floor_is_the_bare_forward_and_tail_backward_and_gives_grad_cams_gradient():
    from conftest import make_nonlinear_tail_net

    torch.manual_seed(0)
    images, targets = torch.rand(3, 3, 8, 8), torch.tensor([0, 2, 1])
    net = make_nonlinear_tail_net().eval()
    floor = bench.floor_call("grad-cam", net, LAYER, images, targets)
    assert floor.count == 1.0 and floor.passes == "1 forward + 1 backward (tail)"

    def saved_by_autograd(trainable: bool) -> int:
        for p in net.features.parameters():  # the layer and what comes before it
            p.requires_grad_(trainable)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
            floor.call()
        return len(saved)

    # trainable parameters up to the layer (a user's model) add nothing to the graph: nothing before the layer
    # is recorded
    assert saved_by_autograd(True) == saved_by_autograd(False) > 0
    heads = []
    handle = net.head.register_forward_pre_hook(lambda m, i: heads.append(i[0].shape[0]))
    try:
        gradient = floor.call()
    finally:
        handle.remove()
    assert heads == [3]  # one pass of the tail: the network's own
    assert all(p.grad is None for p in net.parameters())
    weights = bench.methods.get("grad-cam")(net, LAYER).weights(images, targets)
    torch.testing.assert_close(gradient.mean((2, 3)), weights)
    # CAM's floor is the plain forward pass of the same round; LRP-CAM's and LIFT-CAM's on a non-linear tail
    # run the tail again (LIFT-CAM on [A; 0])
    assert bench.floor_call("cam", net, LAYER, images, targets) == bench.Floor(None, 1.0, "1 forward")
    lrp = bench.floor_call("lrp-cam", net, LAYER, images, targets)
    lift = bench.floor_call("lift-cam", net, LAYER, images, targets)
    assert lrp.passes == "1 forward + 1 tail forward + 1 tail backward"
    assert lift.passes == "1 forward + 1 tail forward on [A; 0] + 1 tail backward"
    assert lrp.call().shape == lift.call().shape == (3, 3, 4, 4)
    linear = bench.floor_call("lift-cam", make_linear_tail_net(), LAYER, images, targets)
    assert linear.passes == "1 forward + 1 backward (tail)"  # its multipliers are the gradient


@pytest.mark.slow
def test_training_table_times_the_three_lficam_networks(monkeypatch):
    from camrepro.experiments import lficam

    real = lficam.training_throughput
    monkeypatch.setattr(lficam, "training_throughput", lambda p, d: real(p, d, batch_size=4, steps=1, warmup=0))
    table = bench.training_table(torch.device("cpu"))
    assert table.network.tolist() == list(lficam.KINDS)
    assert (table.images_per_second > 0).all() and table.overhead.iloc[0] == 0.0


def test_ratio_table_divides_times_of_the_same_run():
    table = pd.DataFrame({
        "device": ["cpu"] * 4, "batch": [1, 1, 16, 16], "method": ["lift-cam", "grad-cam"] * 2,
        "ours_s_per_image": [0.2, 0.1, 0.04, math.nan], "forward_s_per_image": [0.1, 0.1, 0.02, 0.02],
    })
    ratios = bench.ratio_table(table, [("lift-cam", "forward"), ("lift-cam", "grad-cam"), ("score-cam", "lift-cam")])
    assert ratios[["batch", "method", "other"]].values.tolist() == [
        [1, "lift-cam", "forward"], [1, "lift-cam", "grad-cam"], [16, "lift-cam", "forward"]]
    assert ratios.ratio.tolist() == pytest.approx([2.0, 2.0, 2.0])


def test_a_pair_is_timed_as_expensive_when_their_side_is(monkeypatch):
    # pytorch-grad-cam's Ablation-CAM costs ~100x ours: the pair is timed on few images because of their side
    pytest.importorskip("pytorch_grad_cam")
    probed = []

    def probe(run, images, targets, budget, forward_seconds, clock=None):
        probed.append(run)
        return len(probed) == 2   # ours is cheap, theirs is not

    monkeypatch.setattr(bench, "probe_is_expensive", probe)
    table = bench.run_benchmark(make_linear_tail_net(), LAYER, torch.rand(4, 3, 8, 8), ["grad-cam"],
                                batch_sizes=(4,), budget=bench.Budget(repeats=2, warmup=0, expensive_images=2,
                                                                      expensive_repeats=1))
    assert len(probed) == 2
    assert table.ours_images.tolist() == [2] and table.theirs_images.tolist() == [2] and table.rounds.tolist() == [1]


def test_cheap_calls_are_repeated_within_a_round_until_the_quickest_lasts_min_call_seconds():
    clock = FakeClock(cost=0.0)

    def costing(seconds: float):
        def call() -> None:
            clock.now += seconds
        return call

    device = torch.device("cpu")
    calls = {"forward": costing(0.01), "ours": costing(0.04)}
    assert bench.calls_per_round(calls, 0.25, device, clock) == 25  # the quickest, 10 ms, repeated to 0.25 s
    assert bench.calls_per_round(calls, 0.0, device, clock) == 1  # 0: once per round
    assert bench.calls_per_round({"forward": costing(1e-6)}, 0.25, device, clock) == bench.MAX_CALLS_PER_ROUND
    assert bench.calls_per_round({"forward": costing(0.0)}, 0.25, device, clock) == 1  # a clock that stands still


def test_a_row_makes_each_call_calls_per_round_times_and_divides_by_them(monkeypatch):
    images = torch.rand(2, 3, 8, 8)
    net = make_linear_tail_net()
    floors = count_mask_gradient_images(monkeypatch)
    monkeypatch.setattr(bench, "calls_per_round", lambda calls, *args, **kwargs: 3)
    monkeypatch.setattr(bench, "probe_is_expensive", lambda *args, **kwargs: False)
    table = bench.run_benchmark(net, LAYER, images, ["opti-cam"], batch_sizes=(2,), compare=False,
                                budget=bench.Budget(repeats=2, warmup=0, min_call_seconds=1.0),
                                options={"opti-cam": {"iterations": 2}})
    assert table.calls_per_round.tolist() == [3] and table.rounds.tolist() == [2]
    assert floors == [2] * (3 * 2)  # 3 calls in each of the 2 rounds
    assert table.floor_s_per_image.iloc[0] > 0
