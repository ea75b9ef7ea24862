"""Progress bars: drawn on a terminal or when forced, silent otherwise, never changing what is iterated."""
import io
import sys

from camrepro.progress import progress, progress_enabled


def test_forced_off_and_on(monkeypatch):
    monkeypatch.setenv("CAMREPRO_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.setenv("CAMREPRO_PROGRESS", "1")
    assert progress_enabled()


def test_silent_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("CAMREPRO_PROGRESS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_enabled()
    assert list(progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert sys.stderr.getvalue() == ""


def test_only_rank_zero_draws(monkeypatch):
    monkeypatch.delenv("CAMREPRO_PROGRESS", raising=False)
    monkeypatch.setenv("RANK", "1")
    assert not progress_enabled()


def test_forced_bar_writes_to_stderr(monkeypatch):
    monkeypatch.setenv("CAMREPRO_PROGRESS", "1")
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    assert sum(progress(range(3), desc="steps")) == 3
    assert "steps" in buffer.getvalue()


def _package_loops(net):
    """Run each long loop of the package once on a tiny network: Opti-CAM iterations, Score-CAM channel
    batches, SHAP permutations and insertion/deletion steps."""
    import torch

    from camrepro import methods, metrics
    from camrepro.metrics.channel_shap import permutation_shap
    from camrepro.methods.tail import extract_tail

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    methods.get("opti-cam")(net, layer="features", iterations=3)(x, [0, 1])
    methods.get("score-cam")(net, layer="features", batch_size=2)(x, [0, 1])
    with torch.no_grad():
        acts = net.features(net.normalize(x))
    permutation_shap(extract_tail(net.eval(), "features"), acts, [0, 1], n_permutations=4)
    metrics.insertion_deletion(net, x, torch.rand(2, 8, 8), [0, 1], mode="deletion", steps=4)


def test_the_package_loops_draw_a_bar_when_forced_and_nothing_otherwise(monkeypatch):
    from conftest import make_linear_tail_net

    net = make_linear_tail_net()
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    monkeypatch.setenv("CAMREPRO_PROGRESS", "1")
    _package_loops(net)
    drawn = buffer.getvalue()
    for desc in ("opti-cam iterations", "score-cam channel batches", "SHAP permutations", "deletion steps"):
        assert desc in drawn, desc
    buffer.seek(0)
    buffer.truncate()
    monkeypatch.setenv("CAMREPRO_PROGRESS", "0")
    _package_loops(net)
    assert buffer.getvalue() == ""
