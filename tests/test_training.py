"""The training engine (src/camrepro/training.py): schedule, determinism, checkpoints, resumption, errors."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import camrepro  # noqa: F401
from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig
from camrepro.training import (
    TrainConfig,
    crop_flip,
    epoch_batches,
    evaluate,
    learning_rate,
    load_checkpoint,
    save_checkpoint,
    seeded,
    train,
    train_cached,
)

TINY = ResNetConfig(num_classes=2, in_channels=1, widths=(4, 4), blocks=(1, 1))
SPEC = {"kind": "plain", "config": TINY.to_dict()}
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see the fixture in conftest.py


def toy_data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1: a bright square in the top-left quadrant; class 0: in the bottom-right. Plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.2 * torch.rand(n, 1, 8, 8, generator=g)
    images[labels == 1, :, 1:4, 1:4] += 0.8
    images[labels == 0, :, 4:7, 4:7] += 0.8
    return images.clamp(0, 1), labels


def tiny_net(seed: int = 0) -> CifarResNet:
    with seeded(seed):
        return CifarResNet(TINY)


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


FAST = TrainConfig(epochs=3, batch_size=8, lr=0.05, schedule="cosine", weight_decay=0.0, seed=7)


# ------------------------------------------------------------------------------------------------- schedule

def test_learning_rate_known_values():
    step = TrainConfig(epochs=4, lr=0.1, schedule="step", milestones=(2, 3), gamma=0.1)
    assert [round(learning_rate(step, e, 0, 5), 12) for e in range(4)] == [0.1, 0.1, 0.01, 0.001]
    cosine = TrainConfig(epochs=4, lr=0.1, schedule="cosine")
    assert learning_rate(cosine, 0, 0, 2) == pytest.approx(0.1)
    assert learning_rate(cosine, 2, 0, 2) == pytest.approx(0.05)
    # t = 1.5 of 4 epochs: 0.1 · ½ (1 + cos(3π/8)) = 0.05 · 1.3826834
    assert learning_rate(cosine, 1, 1, 2) == pytest.approx(0.0691342, abs=1e-7)
    warm = TrainConfig(epochs=4, lr=0.1, schedule="constant", warmup_epochs=1.0)
    assert [learning_rate(warm, 0, b, 4) for b in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert learning_rate(warm, 1, 0, 4) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="invalid position"):
        learning_rate(warm, 0, 4, 4)


def test_train_config_validation_and_round_trip():
    config = TrainConfig(epochs=300, schedule="step", milestones=(150, 225), augment="crop-flip")
    assert TrainConfig.from_dict(config.to_dict()) == config
    for bad, match in (({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr must be positive"),
                       ({"schedule": "linear"}, "schedule"), ({"milestones": (5, 2)}, "increasing"),
                       ({"momentum": float("nan")}, "momentum"), ({"augment": "mixup"}, "augment")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"optimizer": "adam"})


def test_epoch_batches_are_seeded_permutations():
    batches = epoch_batches(10, 4, seed=3, epoch=0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = epoch_batches(10, 4, seed=3, epoch=0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(torch.cat(batches), torch.cat(epoch_batches(10, 4, seed=3, epoch=1)))


def test_crop_flip_shifts_and_mirrors_exactly():
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    out = crop_flip(images, 1, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)       # the same draws, in the same order
    dx, dy = torch.randint(0, 3, (2,), generator=g), torch.randint(0, 3, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for i in range(2):
        window = padded[i, :, dy[i]:dy[i] + 3, dx[i]:dx[i] + 3]
        torch.testing.assert_close(out[i], window.flip(-1) if flip[i] else window)
    # no padding: each image is itself or its mirror
    mirrored = crop_flip(images, 0, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(mirrored[i], images[i]) or torch.equal(mirrored[i], images[i].flip(-1))


# ----------------------------------------------------------------------------------------------- evaluation

class MeanClassifier(nn.Module):
    """logits = (m, 1 − m) with m the image mean: a model whose loss and accuracy are known by hand."""

    num_classes = 2

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([m, 1 - m], dim=1)


def test_evaluate_known_loss_and_accuracy():
    images = torch.stack([torch.full((1, 2, 2), v) for v in (0.9, 0.2, 0.6)])
    labels = torch.tensor([0, 1, 1])        # predictions 0, 1, 0: two correct
    scores = evaluate(MeanClassifier(), (images, labels), batch_size=2)
    # CE of logits (m, 1 − m) for class c: log(1 + e^{(1 − 2m)}) for c = 0, log(1 + e^{(2m − 1)}) for c = 1
    expected = (math.log(1 + math.exp(1 - 1.8)) + math.log(1 + math.exp(0.4 - 1))
                + math.log(1 + math.exp(0.2))) / 3
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["loss"] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------ training, determinism

def test_training_learns_a_separable_toy_problem_and_is_deterministic():
    data, test = toy_data(32, 0), toy_data(16, 1)
    config = TrainConfig(epochs=6, batch_size=8, lr=0.05, weight_decay=0.0, seed=1)
    first = train(tiny_net(), data, config, test_data=test, progress=False)
    second = train(tiny_net(), data, config, test_data=test, progress=False)
    assert states_equal(first.model, second.model)
    assert first.history.equals(second.history.assign(seconds=first.history.seconds,
                                                      images_per_second=first.history.images_per_second))
    history = first.history
    assert list(history.columns) == ["epoch", "lr", "train_loss", "train_accuracy", "test_loss",
                                     "test_accuracy", "seconds", "images_per_second"]
    assert list(history.epoch) == [1, 2, 3, 4, 5, 6]
    assert history.test_accuracy.iloc[-1] == 1.0
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    assert not first.model.training
    # another seed shuffles differently
    other = train(tiny_net(), data, TrainConfig(**{**config.to_dict(), "seed": 2}), progress=False)
    assert not states_equal(first.model, other.model)


def test_a_dataset_trains_exactly_like_the_same_tensors():
    images, labels = toy_data(20)
    from_tensors = train(tiny_net(), (images, labels), FAST, progress=False)
    from_dataset = train(tiny_net(), TensorDataset(images, labels), FAST, progress=False)
    assert states_equal(from_tensors.model, from_dataset.model)


def test_progress_bar_only_when_asked(capsys):
    train(tiny_net(), toy_data(8), TrainConfig(epochs=1, batch_size=4), progress=False)
    assert capsys.readouterr().err == ""
    train(tiny_net(), toy_data(8), TrainConfig(epochs=1, batch_size=4), progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- bad data

@pytest.mark.parametrize("images, labels, error, match", [
    (torch.rand(4, 8, 8), torch.zeros(4, dtype=torch.long), ValueError, r"\[N, C, H, W\]"),
    (torch.rand(4, 2, 8, 8), torch.zeros(4, dtype=torch.long), ValueError, "2 channels"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), TypeError,
     "floating point"),
    (torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), ValueError, "class 2, out of range"),
    (torch.rand(4, 1, 8, 8), torch.tensor([0, -1, 1, 0]), ValueError, "negative class"),
    (torch.rand(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), ValueError, "one class index per image"),
    (torch.rand(4, 1, 8, 8), torch.zeros(4), TypeError, "integer tensor"),
    (torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long), ValueError, "empty"),
    (torch.full((2, 1, 8, 8), float("nan")), torch.zeros(2, dtype=torch.long), ValueError, "NaN"),
])
def test_bad_data_is_rejected_with_a_clear_error(images, labels, error, match):
    with pytest.raises(error, match=match):
        train(tiny_net(), (images, labels), FAST, progress=False)


def test_bad_datasets_and_arguments_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        train(tiny_net(), TensorDataset(torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), FAST)
    with pytest.raises(ValueError, match="out of range"):
        train(tiny_net(), TensorDataset(torch.rand(4, 1, 8, 8), torch.full((4,), 5)), FAST, progress=False)
    with pytest.raises(TypeError, match="pair"):
        train(tiny_net(), [torch.rand(4, 1, 8, 8)], FAST)
    with pytest.raises(ValueError, match="test data labels"):
        train(tiny_net(), toy_data(4), FAST, test_data=(torch.rand(2, 1, 8, 8), torch.tensor([0, 9])))
    with pytest.raises(TypeError, match="TrainConfig"):
        train(tiny_net(), toy_data(4), {"epochs": 1})


# ---------------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_resume_repeats_the_uninterrupted_run(tmp_path):
    data = toy_data(24)
    full = train(tiny_net(), data, FAST, progress=False)
    path = tmp_path / "run.pt"
    two_epochs = TrainConfig(**{**FAST.to_dict(), "epochs": 2})
    first = train(tiny_net(), data, two_epochs, checkpoint=path, progress=False)
    assert first.resumed_from == 0 and load_checkpoint(path)["epoch"] == 2
    # the same run with more epochs does not match the 2-epoch checkpoint's fingerprint: it restarts
    restarted = train(tiny_net(), data, FAST, checkpoint=path, progress=False)
    assert restarted.resumed_from == 0 and "another model" in restarted.restarted
    assert states_equal(restarted.model, full.model)
    # a finished checkpoint of this very run: resuming does no more epochs and changes nothing
    again = train(tiny_net(seed=99), data, FAST, checkpoint=path, progress=False)
    assert again.resumed_from == 3 and states_equal(again.model, full.model)
    assert again.history.drop(columns=["seconds", "images_per_second"]).equals(
        full.history.drop(columns=["seconds", "images_per_second"]))


def test_a_corrupt_checkpoint_is_discarded_and_training_restarts(tmp_path):
    data = toy_data(16)
    path = tmp_path / "run.pt"
    path.write_bytes(b"\x80\x02 truncated pickle")
    stale = tmp_path / ".tmp-run.pt-abc"
    stale.write_bytes(b"half-written")
    result = train(tiny_net(), data, FAST, checkpoint=path, progress=False)
    assert result.resumed_from == 0 and result.restarted == "the checkpoint could not be read"
    assert not stale.exists()
    assert states_equal(result.model, train(tiny_net(), data, FAST, progress=False).model)
    assert load_checkpoint(path)["epoch"] == 3


def test_save_checkpoint_is_atomic_when_writing_fails(tmp_path):
    path = save_checkpoint({"version": 1, "x": torch.ones(2)}, tmp_path / "c.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_checkpoint({"version": 1, "x": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))       # the old checkpoint is intact
    assert list(tmp_path.iterdir()) == [path]                           # and no temporary file is left


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)   # as the in-process run it is compared with (the one_thread fixture)
    sys.path.insert(0, {tests!r})
    from test_training import KILL_CONFIG, tiny_net, toy_data
    from camrepro.training import train

    def slow(row):
        print("epoch", row["epoch"], flush=True)
        time.sleep(0.5)       # leaves time to be killed between two epochs or in the middle of one

    train(tiny_net(), toy_data(24), KILL_CONFIG, checkpoint={path!r}, progress=False, on_epoch_end=slow)
    print("finished", flush=True)
""")
KILL_CONFIG = TrainConfig(epochs=12, batch_size=4, lr=0.02, weight_decay=1e-4, seed=5)


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
    path = tmp_path / "killed.pt"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env,
                               cwd=tmp_path, start_new_session=True)
    try:
        for line in process.stdout:
            if line.strip() == "epoch 2":
                break
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    done = load_checkpoint(path)["epoch"]
    assert 2 <= done < KILL_CONFIG.epochs
    resumed = train(tiny_net(), toy_data(24), KILL_CONFIG, checkpoint=path, progress=False)
    assert resumed.resumed_from == done and resumed.restarted is None
    uninterrupted = train(tiny_net(), toy_data(24), KILL_CONFIG, progress=False)
    for name, value in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6)
    assert list(resumed.history.epoch) == list(range(1, KILL_CONFIG.epochs + 1))


# ---------------------------------------------------------------------------------------------- cached runs

def test_train_cached_trains_once_then_loads(tmp_path):
    calls = []

    def data():
        calls.append("data")
        return toy_data(16)

    first = train_cached("test", "tiny", SPEC, FAST, data, data_params={"toy": 16}, root=tmp_path,
                         progress=False)
    assert not first.result.from_cache and calls == ["data"]
    assert list(first.history.resumed_from) == [0, 0, 0]
    assert not any((tmp_path / "test" / ".checkpoints").glob("*.pt"))      # removed once stored
    second = train_cached("test", "tiny", SPEC, FAST, data, data_params={"toy": 16}, root=tmp_path)
    assert second.result.from_cache and calls == ["data"]
    assert states_equal(first.model, second.model) and not second.model.training
    direct = train(tiny_net(FAST.seed), toy_data(16), FAST, progress=False)
    assert states_equal(direct.model, second.model)
    np.testing.assert_allclose(second.history.train_loss, direct.history.train_loss, rtol=1e-12)
    other = train_cached("test", "tiny", SPEC, FAST, data, data_params={"toy": 17}, root=tmp_path,
                         progress=False)
    assert not other.result.from_cache and calls == ["data", "data"]


def test_the_multi_tensor_sgd_update_gives_the_bits_of_the_loop():
    # training.train uses SGD(foreach=True) for speed: it must not change a trained network
    import copy

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    twin = copy.deepcopy(net)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    for model, foreach in ((net, False), (twin, True)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=5e-4, foreach=foreach)
        for _ in range(4):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin.parameters()))
