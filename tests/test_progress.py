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
