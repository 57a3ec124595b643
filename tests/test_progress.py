"""pipeline.progress: tqdm on a terminal, periodic log lines in a log file."""

import io
import logging

from tqdm.auto import tqdm

from pipeline import progress as progress_mod
from pipeline.progress import LogProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pipeline.progress"]


def test_a_terminal_gets_a_tqdm_bar_and_a_file_gets_log_lines(monkeypatch):
    monkeypatch.setattr(progress_mod.sys, "stderr", Terminal())
    assert isinstance(progress_bar(total=3, desc="x"), tqdm)
    monkeypatch.setattr(progress_mod.sys, "stderr", io.StringIO())
    assert isinstance(progress_bar(total=3, desc="x"), LogProgress)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    progress_mod.library_bars_off()
    assert progress_mod.os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_one_line_per_tenth_and_the_last_count_at_close(caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(LogProgress, "min_s", 0.0)
    bar = LogProgress(total=40, desc="train", unit="step", initial=4)
    for _ in range(30):
        bar.update(1)
        bar.set_postfix(reward="0.500")
    bar.close()
    got = lines(caplog)
    assert [line.split(" step")[0] for line in got] == [f"train: {n}/40" for n in (8, 12, 16, 20, 24, 28, 32, 34)]
    assert got[0].startswith("train: 8/40 step (20%), ") and got[-1].endswith(", reward=0.500")


def test_a_line_every_interval_without_a_total(caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(LogProgress, "every_s", 0.0)
    bar = LogProgress(desc="rollout", unit="dlg")
    bar.update(2)
    bar.update(3)
    bar.close()  # nothing new since the last line
    assert [line.split(",")[0] for line in lines(caplog)] == ["rollout: 2 dlg", "rollout: 5 dlg"]


def test_a_burst_of_updates_logs_once_then_the_last_count_at_close(caplog):
    caplog.set_level(logging.INFO)
    bar = LogProgress(total=20, desc="rollout", unit="dlg")
    bar.start = bar.logged_at = bar.start - 5  # the first dialogues took 5 s, then the rest of the batch ends at once
    for _ in range(20):
        bar.update(1)
    bar.close()
    assert [line.split(" dlg")[0] for line in lines(caplog)] == ["rollout: 2/20", "rollout: 20/20"]


def test_iteration_and_disable(caplog):
    caplog.set_level(logging.INFO)
    assert list(LogProgress(range(5), desc="sft")) == list(range(5))
    assert lines(caplog)[-1].startswith("sft: 5/5 it (100%)")
    caplog.clear()
    bar = LogProgress(range(5), desc="quiet", disable=True)
    assert list(bar) == list(range(5))
    bar.close()
    assert lines(caplog) == []
