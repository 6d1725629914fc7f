"""Edge cases of `forge_nb.progress` (the story and the main examples are in nbs/api/10_progress.ipynb)."""
from __future__ import annotations

import importlib
import re
import sys
import types
from typing import Any

import pytest
from fakes import FakeClock, demo_run, fake_run  # noqa: E402  (tests/ is on sys.path)
from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback, PrinterCallback, ProgressCallback

import forge_nb
import forge_nb.progress as widgets_module
from forge_nb.progress import (
    EMA_BETA,
    ForgeProgressCallback,
    ProgressFn,
    ProgressTracker,
    TrainingProgressWidget,
    fmt_duration,
    in_notebook,
    load_ipywidgets,
    loss_svg,
    progress_mode,
    remove_trainer_progress,
    thin,
)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, step: int, total: int, progress: float, loss: float | None, epoch: float) -> None:
        self.calls.append((step, total, progress, loss, epoch))


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def log(cb: ForgeProgressCallback, args: TrainingArguments, logs: dict[str, Any] | None, **state_kw: Any) -> None:
    cb.on_log(args, TrainerState(**state_kw), TrainerControl(), logs=logs)


def _ipython(shell_class: str | None) -> types.ModuleType:
    mod = types.ModuleType("IPython")
    shell = None if shell_class is None else type(shell_class, (), {})()
    mod.get_ipython = lambda: shell  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def widget(clock: FakeClock, **kw: Any) -> TrainingProgressWidget:
    kw.setdefault("mode", "widget")
    kw.setdefault("auto_display", False)
    return TrainingProgressWidget(clock=clock, **kw)


def points(svg: str, cls: str = "loss") -> int:
    m = re.search(rf'<polyline class="{cls}"[^>]* points="([^"]*)"', svg)
    return len(m.group(1).split()) if m else 0


def _trainer(callbacks: list[Any]) -> Any:
    handler = CallbackHandler(callbacks, None, None, None, None)
    return types.SimpleNamespace(callback_handler=handler, add_callback=handler.add_callback,
                                 remove_callback=handler.remove_callback)


def test_progress_callback_called(args: TrainingArguments, rec: Recorder) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, {"loss": 1.25, "learning_rate": 2e-4}, global_step=5, max_steps=20, epoch=0.5)
    assert rec.calls == [(5, 20, 0.25, 1.25, 0.5)]
    step, total, progress, loss, epoch = rec.calls[0]
    assert isinstance(step, int) and isinstance(total, int)
    assert isinstance(progress, float) and isinstance(loss, float) and isinstance(epoch, float)


def test_callback_handles_missing_loss(args: TrainingArguments, rec: Recorder) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, {"train_runtime": 3.2, "train_loss": 1.1}, global_step=10, max_steps=10, epoch=1.0)
    assert rec.calls == [(10, 10, 1.0, None, 1.0)]
    assert cb.history == [] and cb.first_loss is None and cb.last_loss is None


@pytest.mark.parametrize("logs", [None, {}])
def test_empty_logs_do_nothing(args: TrainingArguments, rec: Recorder, logs: dict[str, Any] | None) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, logs, global_step=1, max_steps=10)
    assert rec.calls == [] and cb.history == []


def test_no_callback_no_error_but_history(args: TrainingArguments) -> None:
    cb = ForgeProgressCallback()
    assert cb.progress_callback is None
    log(cb, args, {"loss": 0.75}, global_step=1, max_steps=10, epoch=0.1)
    assert cb.last_loss == 0.75


def test_non_main_process_not_called(args: TrainingArguments, rec: Recorder) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, {"loss": 1.0}, global_step=1, max_steps=10, is_world_process_zero=False)
    # local rank 0 of a second node is still not the world's main process
    log(cb, args, {"loss": 1.0}, global_step=2, max_steps=10, is_world_process_zero=False,
        is_local_process_zero=True)
    assert rec.calls == []
    assert [h["step"] for h in cb.history] == [1, 2]  # history is kept on every process


def test_zero_max_steps_counts_as_one(args: TrainingArguments, rec: Recorder) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, {"loss": 2.0}, global_step=0, max_steps=0, epoch=None)
    assert rec.calls == [(0, 1, 0.0, 2.0, 0.0)]
    log(cb, args, {"loss": 2.0}, global_step=3, max_steps=0, epoch=None)  # steps done, total not known yet
    assert rec.calls[1] == (3, 1, 1.0, 2.0, 0.0)


def test_progress_capped_at_one(args: TrainingArguments, rec: Recorder) -> None:
    cb = ForgeProgressCallback(rec)
    log(cb, args, {"loss": 2.0}, global_step=25, max_steps=20, epoch=3.0)
    assert rec.calls[0][1:3] == (20, 1.0)
    log(cb, args, {"loss": 2.0}, global_step=3, max_steps=0)
    assert rec.calls[1][1:3] == (1, 1.0)


def test_history_first_last_loss(args: TrainingArguments) -> None:
    cb = ForgeProgressCallback()
    assert (cb.first_loss, cb.last_loss) == (None, None)
    for step, logs in enumerate([{"loss": 2.5, "learning_rate": 2e-4}, {"learning_rate": 1e-4},
                                 {"eval_loss": 9.0}, {"loss": 1, "learning_rate": 5e-5},
                                 {"loss": 0.5}], start=1):
        log(cb, args, logs, global_step=step, max_steps=5, epoch=step / 5)
    assert cb.history == [
        {"step": 1, "loss": 2.5, "learning_rate": 2e-4, "epoch": 0.2},
        {"step": 4, "loss": 1.0, "learning_rate": 5e-5, "epoch": 0.8},
        {"step": 5, "loss": 0.5, "learning_rate": None, "epoch": 1.0},
    ]
    assert isinstance(cb.history[1]["loss"], float)
    assert (cb.first_loss, cb.last_loss) == (2.5, 0.5)


def test_errors_in_progress_fn_propagate(args: TrainingArguments) -> None:
    def broken(*a: object) -> None:
        raise RuntimeError("display failed")
    with pytest.raises(RuntimeError, match="display failed"):
        log(ForgeProgressCallback(broken), args, {"loss": 1.0}, global_step=1, max_steps=2)


def test_works_through_trainer_callback_handler(args: TrainingArguments, rec: Recorder) -> None:
    """The Trainer calls on_log through CallbackHandler with extra keyword arguments."""
    cb = ForgeProgressCallback(rec)
    handler = CallbackHandler([cb], model=None, processing_class=None, optimizer=None, lr_scheduler=None)
    state = TrainerState(global_step=2, max_steps=4, epoch=1.0)
    control = handler.on_log(args, state, TrainerControl(), {"loss": 0.9, "learning_rate": 1e-4})
    assert isinstance(control, TrainerControl)
    assert rec.calls == [(2, 4, 0.5, 0.9, 1.0)]


def test_plain_function_is_a_progress_fn(args: TrainingArguments) -> None:
    seen: list[float] = []

    def fn(step: int, total: int, progress: float, loss: float | None, epoch: float) -> None:
        seen.append(progress)

    typed: ProgressFn = fn
    log(ForgeProgressCallback(typed), args, {"loss": 1.0}, global_step=1, max_steps=4)
    assert seen == [0.25]


@pytest.mark.parametrize("shell, expected", [("ZMQInteractiveShell", True), ("TerminalInteractiveShell", False),
                                             ("CaptureShell", False), (None, False)])
def test_in_notebook_shells(monkeypatch: pytest.MonkeyPatch, shell: str | None, expected: bool) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setitem(sys.modules, "IPython", _ipython(shell))
    assert in_notebook() is expected


def test_in_notebook_without_ipython_and_in_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert in_notebook() is False
    broken = types.ModuleType("IPython")
    broken.get_ipython = lambda: 1 / 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", broken)
    assert in_notebook() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert in_notebook() is True


def test_progress_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert progress_mode("text") == "text" and progress_mode("widget") == "widget"
    monkeypatch.setattr(widgets_module, "in_notebook", lambda: False)
    assert progress_mode("auto") == "text"
    monkeypatch.setattr(widgets_module, "in_notebook", lambda: True)
    assert progress_mode("auto") == "widget"
    with pytest.raises(ValueError, match="must be auto, widget or text"):
        progress_mode("tqdm")


def test_progress_mode_colab_and_without_ipywidgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert progress_mode("auto") == "widget"  # Colab counts as a notebook
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    assert load_ipywidgets() is None and progress_mode("auto") == "text" and progress_mode("text") == "text"
    with pytest.raises(ImportError, match=r"forge_nb\[notebook\]"):
        progress_mode("widget")
    with pytest.raises(ValueError, match="must be auto, widget or text"):
        progress_mode("html")


def test_without_ipywidgets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`import forge_nb.progress` works when ipywidgets cannot be imported; auto mode is text, widget mode says
    what to install."""
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    monkeypatch.delitem(sys.modules, "forge_nb.progress")  # a fresh import; monkeypatch puts the old module back
    monkeypatch.setattr(forge_nb, "progress", widgets_module)  # and the package attribute
    mod = importlib.import_module("forge_nb.progress")
    assert mod is not widgets_module
    assert mod.load_ipywidgets() is None
    monkeypatch.setattr(mod, "in_notebook", lambda: True)  # even inside a notebook
    w = mod.TrainingProgressWidget(clock=FakeClock(1000.0))
    assert (w.mode, w.bar, w.box) == ("text", None, None)
    w.begin(total=3)
    assert capsys.readouterr().out.startswith("Training: step 0/3 (0%)")
    w.begin(total=5)
    assert capsys.readouterr().out.startswith("Training: step 0/5 (0%)")
    with pytest.raises(ImportError, match=r"pip install 'forge_nb\[notebook\]'"):
        mod.TrainingProgressWidget(mode="widget")


def test_load_ipywidgets() -> None:
    assert load_ipywidgets() is sys.modules["ipywidgets"]


def test_fmt_duration() -> None:
    assert [fmt_duration(x) for x in (None, float("nan"), float("inf"), -3, 0, 59.4, 90, 3600, 36000 + 61)] == \
        ["?", "?", "?", "0:00", "0:00", "0:59", "1:30", "1:00:00", "10:01:01"]


def test_thin_keeps_ends() -> None:
    pts = [(i, float(i)) for i in range(1001)]
    out = thin(pts, 200)
    assert len(out) == 200 and out[0] == pts[0] and out[-1] == pts[-1]
    assert [s for s, _ in out] == sorted({s for s, _ in out})
    assert thin(pts[:5], 200) == pts[:5]


def test_loss_svg() -> None:
    losses = [(s, 3.0 - 0.1 * s) for s in range(1, 21)]
    svg = loss_svg(losses, losses[:5], total_steps=40)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert points(svg, "loss") == 20 and points(svg, "ema") == 5
    assert "step 40" in svg and "2.9" in svg and 'class="last"' in svg
    xs = [float(p.split(",")[0]) for p in re.search(r'class="loss"[^>]* points="([^"]*)"', svg).group(1).split()]  # type: ignore[union-attr]
    assert xs == sorted(xs) and xs[-1] < 360 / 2 + 44  # step 20 of 40: left half of the plot
    assert points(loss_svg([(1, 1.0)] * 3), "loss") == 3  # a flat line still draws (no division by zero)
    assert points(loss_svg(losses, max_points=7)) == 7
    assert "no loss logged yet" in loss_svg([]) and points(loss_svg([])) == 0


def test_tracker_ema_eta_tokens(clock: FakeClock) -> None:
    t = ProgressTracker(clock=clock)
    assert t.ema_beta == EMA_BETA == 0.9
    t.begin(total=100)
    clock.tick(30)  # warm-up before the first step is not counted in the ETA once 2 steps are done
    t.note_step(1)
    assert t.eta == pytest.approx(30 * 99)
    for s in range(2, 11):
        clock.tick(1)
        t.note_step(s, epoch=s / 100)
    assert t.eta == pytest.approx(90) and t.elapsed == pytest.approx(39)
    for i, loss in enumerate([4.0, 2.0, 2.0]):
        t.note_logs({"loss": loss, "num_tokens": 1000.0 * (i + 1)}, step=10 + i)
    raw = 0.0
    for loss in [4.0, 2.0, 2.0]:
        raw = 0.9 * raw + 0.1 * loss
    assert t.ema_loss == pytest.approx(raw / (1 - 0.9 ** 3))
    assert [e for _, e in t.smoothed][0] == 4.0  # bias-corrected: the first smoothed value is the first loss
    assert t.losses == [(10, 4.0), (11, 2.0), (12, 2.0)]
    # the first count is measured from begin (39 s), later ones need time to pass: no rate over 0 s
    assert t.tokens_per_second == pytest.approx(1000 / 39)
    clock.tick(2)
    t.note_logs({"num_tokens": 5000.0})
    assert t.tokens_per_second == pytest.approx(1000.0)


def test_tracker_token_sources(clock: FakeClock) -> None:
    t = ProgressTracker(clock=clock)
    t.begin(total=10, step=5, tokens_seen=5000)  # a resumed run: the Trainer's count starts at 5000
    clock.tick(4)
    t.note_logs({"num_input_tokens_seen": 7000})
    assert t.tokens_per_second == pytest.approx(500)
    clock.tick(1)
    t.note_logs({"num_input_tokens_seen": 7000, "train_runtime": 5.0})  # the summary: no new tokens, the rate stays
    assert t.tokens_per_second == pytest.approx(500)
    clock.tick(1)
    t.note_logs({"num_input_tokens_seen": 7300, "train_tokens_per_second": 99.0})  # the count wins: current rate,
    assert t.tokens_per_second == pytest.approx(150)  # over the 2 s since the count last grew
    t.note_logs({"train_tokens_per_second": 321.5})  # only the Trainer's average: taken
    assert t.tokens_per_second == 321.5
    u = ProgressTracker(clock=clock)
    u.begin(total=10)
    clock.tick(1)
    u.note_logs({"loss": 1.0, "learning_rate": 3e-4, "eval_loss": 1.2})
    assert u.tokens_per_second is None and "tok/s" not in u.details()
    assert "eval loss 1.2000" in u.details() and "lr 3.00e-04" in u.details()


def test_tracker_fail_messages(clock: FakeClock) -> None:
    t = ProgressTracker(clock=clock)
    assert t.headline() == "waiting for training to start" and t.elapsed is None
    t.fail()
    assert t.status == "error" and t.error == "unknown error" and t.elapsed is None
    t.fail(KeyboardInterrupt())
    assert t.error == "KeyboardInterrupt"
    t.fail("x" * 1000)
    assert t.error is not None and len(t.error) == 300 and t.error.endswith("…")
    t.finish()
    assert t.status == "error"  # an error is not overwritten by a later finish
    with pytest.raises(ValueError):
        ProgressTracker(ema_beta=-0.1)


def test_tracker_zero_total(clock: FakeClock) -> None:
    t = ProgressTracker(clock=clock)
    t.begin(total=0)
    t.note_step(3)
    assert t.headline() == "step 3" and t.eta is None


def test_widget_initial_state(clock: FakeClock) -> None:
    w = widget(clock)
    assert (w.mode, w.status, w.bar.value, w.bar.max, w.bar.bar_style) == ("widget", "idle", 0, 1, "info")
    assert "waiting for training to start" in w.label.value and points(w.curve.value) == 0
    assert w.box.children[1] is w.stats and w.box.children[2] is w.curve


def test_widget_full_run(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock, title="My <run>", render_every=1000.0)
    fake_run(w, args, clock, max_steps=20, logging_steps=5, logs_extra={"num_tokens": lambda s: 256.0 * s})
    assert (w.status, w.bar.value, w.bar.max, w.bar.bar_style) == ("done", 20, 20, "success")
    assert "<b>My &lt;run&gt;</b>" in w.label.value and "done: 20/20 steps" in w.label.value
    for text in ("epoch 2.00", "loss 0.5000", "smoothed", "mean loss 0.7500", "lr 0.00e+00", "512 tok/s",
                 "elapsed 0:10"):
        assert text in w.stats.value, text
    assert "ETA" not in w.stats.value
    assert points(w.curve.value, "loss") == 4 and points(w.curve.value, "ema") == 4
    assert w.elapsed == 10.0


def test_widget_demo_run_throttled_then_labelled(args: TrainingArguments, clock: FakeClock) -> None:
    "0.4 s steps with `render_every=1.0`: only every third step redraws; then a log with a loss and a token count."
    w = widget(clock, render_every=1.0)
    assert (w.bar.value, w.bar.max, w.bar.bar_style, w.status) == (0, 1, "info", "idle")
    state, control = TrainerState(max_steps=30), TrainerControl()
    w.on_train_begin(args, state, control)
    assert (w.bar.max, w.renders) == (30, 1)
    draws = []
    for step in range(1, 11):
        clock.tick(0.4)
        state.global_step, state.epoch = step, step / 10
        w.on_step_end(args, state, control)
        draws.append(w.renders)
    assert draws == [1, 1, 2, 2, 2, 3, 3, 3, 4, 4]  # redraws at steps 3, 6, 9: once 1 s has passed
    assert w.bar.value == 9  # the bar shows the last drawn step
    w.on_log(args, state, control, logs={"loss": 1.5, "learning_rate": 1e-4, "num_tokens": 5120.0})
    w.refresh(force=True)
    assert "step 10/30 (33%)" in w.label.value
    for text in ("epoch 1.00", "loss 1.5000", "smoothed 1.5000", "lr 1.00e-04", "1,280 tok/s", "elapsed 0:04",
                 "ETA 0:08"):
        assert text in w.stats.value, text
    assert points(w.curve.value, "loss") == 1


def test_widget_demo_run_done(args: TrainingArguments, clock: FakeClock) -> None:
    "The notebook's demo run ends green, with every logged loss on the curve; the last step is always drawn."
    w = widget(clock, render_every=100.0)
    demo_run(w, args, clock, max_steps=30, logging_steps=3)
    assert (w.status, w.bar.value, w.bar.max, w.bar.bar_style) == ("done", 30, 30, "success")
    assert "done: 30/30 steps" in w.label.value and "mean loss 1.1000" in w.stats.value and "ETA" not in w.stats.value
    assert points(w.curve.value, "loss") == 10
    assert w.tokens_per_second == 512 / 0.5


def test_widget_demo_run_error(args: TrainingArguments, clock: FakeClock) -> None:
    "An exception inside `with w:` turns the bar red and keeps the message; the exception still propagates."
    w = widget(clock)
    with pytest.raises(RuntimeError, match="fake failure at step 7"):
        with w:
            demo_run(w, args, clock, stop_at=7)
    assert (w.status, w.bar.bar_style, w.bar.value) == ("error", "danger", 7)
    assert "stopped with error at step 7/30: RuntimeError: fake failure at step 7" in w.label.value


def test_widget_mid_run_labels(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock, render_every=0.0)
    state, control = TrainerState(max_steps=40), TrainerControl()
    w.on_train_begin(args, state, control)
    assert (w.bar.max, w.bar.value, w.status) == (40, 0, "running")
    assert "step 0/40 (0%)" in w.label.value and "ETA ?" in w.stats.value
    for s in range(1, 11):
        clock.tick(0.5)
        state.global_step, state.epoch = s, s / 20
        w.on_step_end(args, state, control)
    w.on_log(args, state, control, logs={"grad_norm": 0.3})  # a log without loss: no point, nothing breaks
    assert w.loss is None and "loss" not in w.stats.value and points(w.curve.value) == 0
    w.on_log(args, state, control, logs={"loss": 1.25, "learning_rate": 2e-4})
    assert w.bar.value == 10 and "step 10/40 (25%)" in w.label.value
    for text in ("epoch 0.50", "loss 1.2500", "smoothed 1.2500", "lr 2.00e-04", "elapsed 0:05", "ETA 0:15"):
        assert text in w.stats.value, text
    assert "tok/s" not in w.stats.value  # no token count logged: not shown
    assert points(w.curve.value) == 1


def test_widget_throttling(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock, render_every=0.25)
    state, control = TrainerState(max_steps=50), TrainerControl()
    w.on_train_begin(args, state, control)
    assert w.renders == 1
    values = []
    for s in range(1, 51):
        clock.tick(0.1)
        state.global_step = s
        w.on_step_end(args, state, control)
        values.append(w.bar.value)
    # 0.1 s steps, at most one redraw per 0.25 s: every third step redraws, and the last one always
    assert w.renders == 1 + 16 + 1
    assert values[:6] == [0, 0, 3, 3, 3, 6] and values[-1] == 50
    n = w.renders
    w.on_log(args, state, control, logs={"loss": 0.1})  # a log at the last step redraws too
    assert w.renders == n + 1 and "loss 0.1000" in w.stats.value
    assert w.refresh() is False and w.refresh(force=True) is True


def test_widget_shows_a_new_loss_at_once(args: TrainingArguments, clock: FakeClock) -> None:
    "The loss is logged a moment after the step's own redraw: it is drawn then, not a step later."
    w = widget(clock, render_every=0.25)
    state, control = TrainerState(max_steps=10), TrainerControl()
    w.on_train_begin(args, state, control)
    clock.tick(30.0)
    state.global_step = 1
    w.on_step_end(args, state, control)
    n = w.renders
    clock.tick(0.01)
    w.on_log(args, state, control, logs={"grad_norm": 0.5})  # no loss: throttled
    assert w.renders == n
    w.on_log(args, state, control, logs={"loss": 1.2345, "learning_rate": 1e-4})
    assert w.renders == n + 1 and "loss 1.2345" in w.stats.value


def test_widget_error_state(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    with pytest.raises(RuntimeError, match="boom at 7"):
        with w:
            fake_run(w, args, clock, stop_at=7)
    assert (w.status, w.bar.bar_style, w.bar.value) == ("error", "danger", 7)
    assert "stopped with error at step 7/20: RuntimeError: boom at 7" in w.label.value
    assert "ETA" not in w.stats.value
    w2 = widget(clock)
    w2.begin(total=5)
    w2.fail(ValueError("bad <data>"))
    assert w2.bar.bar_style == "danger" and "ValueError: bad &lt;data&gt;" in w2.label.value


def test_context_manager_clean_exit(clock: FakeClock) -> None:
    w = widget(clock)
    with w as same:
        assert same is w
    assert w.status == "idle"  # nothing started: nothing to finish
    with w:
        w.begin(total=10)
    assert (w.status, w.bar.bar_style) == ("done", "success")


def test_not_main_process(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    state = TrainerState(max_steps=5, global_step=5, is_world_process_zero=False)
    for event in ("on_train_begin", "on_step_end", "on_train_end"):
        getattr(w, event)(args, state, TrainerControl())
    w.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    assert (w.status, w.renders, w.losses) == ("idle", 0, [])


def test_events_without_train_begin(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    state = TrainerState(max_steps=8, global_step=2, epoch=0.25)
    w.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    assert (w.status, w.total, w.losses) == ("running", 8, [(2, 1.0)])
    w.on_log(args, state, TrainerControl(), logs={})
    w.on_log(args, state, TrainerControl(), logs=None)
    assert len(w.losses) == 1


def test_resumed_run_eta(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    state, control = TrainerState(max_steps=100, global_step=60), TrainerControl()
    w.on_train_begin(args, state, control)
    assert (w.bar.value, w.start_step) == (60, 60)
    for s in (61, 62, 63):
        clock.tick(2)
        state.global_step = s
        w.on_step_end(args, state, control)
    assert w.eta == pytest.approx(2 * 37)


def test_text_fallback(args: TrainingArguments, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    w = TrainingProgressWidget(mode="text", clock=clock, text_every=3.0)
    assert (w.bar, w.label, w.stats, w.curve, w.box) == (None,) * 5
    fake_run(w, args, clock, max_steps=20, logging_steps=5, logs_extra={"num_tokens": lambda s: 100.0 * s})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 3 + 1  # start, steps 6/12/18 (every 3 s of 0.5 s steps), end
    assert lines[0] == "Training: step 0/20 (0%) | epoch 0.00 | elapsed 0:00 | ETA ?"
    assert lines[1].startswith("Training: step 6/20 (30%) | epoch 0.60 | loss 2.0000 | smoothed 2.0000 | lr 7.50e-05")
    assert "200 tok/s" in lines[1] and "ETA 0:07" in lines[1]
    assert lines[-1].startswith("Training: done: 20/20 steps | epoch 2.00 | loss 0.5000")
    assert "mean loss 0.7500" in lines[-1] and "elapsed 0:10" in lines[-1] and "ETA" not in lines[-1]
    assert w.renders == 5


def test_text_fallback_error(clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    w = TrainingProgressWidget(mode="text", clock=clock, title="job")
    with pytest.raises(KeyError):
        with w:
            w.begin(total=4)
            raise KeyError("input_ids")
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("job: stopped with error at step 0/4: KeyError: 'input_ids'")
    assert w._repr_mimebundle_() == {"text/plain": w.text_line()}


def test_text_stream(clock: FakeClock) -> None:
    import io
    buf = io.StringIO()
    w = TrainingProgressWidget(mode="text", clock=clock, stream=buf)
    w.begin(total=2)
    w.finish()
    assert buf.getvalue().count("\n") == 2 and "done: 0/2 steps" in buf.getvalue()


def test_display(monkeypatch: pytest.MonkeyPatch, args: TrainingArguments, clock: FakeClock) -> None:
    shown: list[Any] = []
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    w = TrainingProgressWidget(mode="widget", clock=clock)  # auto_display
    w.on_train_begin(args, TrainerState(max_steps=3), TrainerControl())
    w.on_train_begin(args, TrainerState(max_steps=3), TrainerControl())
    assert shown == [w.box]  # displayed once
    w2 = widget(clock)
    bundle = w2._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == w2.box.model_id
    w2.show()
    assert shown == [w.box]  # already displayed through its repr
    TrainingProgressWidget(mode="text").show()
    assert shown == [w.box]


def test_progress_fn_is_a_progress_fn(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    fn: ProgressFn = w.progress_fn
    fake_run(ForgeProgressCallback(fn), args, clock, max_steps=20, logging_steps=5)
    assert (w.status, w.bar.value, w.bar.max, w.bar.bar_style) == ("done", 20, 20, "success")
    assert [s for s, _ in w.losses] == [5, 10, 15, 20]
    assert [v for _, v in w.losses] == pytest.approx([2.0, 1.0, 2.0 / 3, 0.5])
    assert w.elapsed == pytest.approx(7.5)  # from the first log event (step 5) to the last step
    assert "epoch 2.00" in w.stats.value


def test_progress_fn_restart_and_ignore(clock: FakeClock) -> None:
    w = widget(clock)
    w.progress_fn(5, 10, 0.5, 1.0, 0.5)
    clock.tick(1)
    w.progress_fn(10, 10, 1.0, 0.5, 1.0)
    assert w.status == "done"
    w.progress_fn(10, 10, 1.0, None, 1.0)  # the summary event after the end: ignored
    assert (w.status, len(w.losses)) == ("done", 2)
    w.progress_fn(2, 10, 0.2, 3.0, 0.2)  # a new run with the same widget
    assert (w.status, w.losses) == ("running", [(2, 3.0)])
    w.fail("stopped")
    w.progress_fn(9, 10, 0.9, 1.0, 0.9)  # after an error, a later step of the same run is ignored
    assert w.status == "error"


def test_callback_and_progress_fn_together(args: TrainingArguments, clock: FakeClock) -> None:
    """What `engine.train(progress_callback=w.progress_fn, callbacks=[w])` does: no double counting."""
    w = widget(clock)
    handler = CallbackHandler([DefaultFlowCallback, ForgeProgressCallback(w.progress_fn), w], None, None, None, None)
    fake_run(handler, args, clock, max_steps=20, logging_steps=5)
    assert (w.status, len(w.losses), w.elapsed) == ("done", 4, 10.0)


def test_accepted_by_callback_handler(args: TrainingArguments, clock: FakeClock) -> None:
    w = widget(clock)
    handler = CallbackHandler([DefaultFlowCallback], None, None, None, None)
    handler.add_callback(w)
    assert w in handler.callbacks and "TrainingProgressWidget" in handler.callback_list
    state, control = TrainerState(max_steps=2), TrainerControl()
    handler.call_event("on_train_begin", args, state, control)
    state.global_step = 2
    clock.tick(1)
    handler.call_event("on_step_end", args, state, control)
    handler.call_event("on_log", args, state, control, logs={"loss": 0.7, "learning_rate": 1e-5})
    control = handler.call_event("on_train_end", args, state, control)
    assert isinstance(control, TrainerControl)
    assert (w.status, w.loss, w.bar.value, w.bar.bar_style) == ("done", 0.7, 2, "success")
    assert handler.pop_callback(TrainingProgressWidget) is w


def test_remove_trainer_progress() -> None:
    from transformers.utils.notebook import NotebookProgressCallback  # what a Trainer adds inside Jupyter

    tr = _trainer([DefaultFlowCallback, NotebookProgressCallback])
    removed = remove_trainer_progress(tr)
    assert [type(c) for c in removed] == [NotebookProgressCallback]
    assert [type(c) for c in tr.callback_handler.callbacks] == [DefaultFlowCallback]
    tr = _trainer([DefaultFlowCallback, ProgressCallback, PrinterCallback])
    assert [type(c) for c in remove_trainer_progress(tr, printer=False)] == [ProgressCallback]
    assert [type(c) for c in tr.callback_handler.callbacks] == [DefaultFlowCallback, PrinterCallback]
    assert [type(c) for c in remove_trainer_progress(tr)] == [PrinterCallback]
    assert remove_trainer_progress(tr) == []


def test_attach(clock: FakeClock) -> None:
    w = widget(clock)
    tr = _trainer([DefaultFlowCallback, ProgressCallback])
    assert w.attach(tr) is tr
    assert tr.callback_handler.callbacks[-1] is w and len(tr.callback_handler.callbacks) == 2
    w.attach(tr)  # twice: still once
    assert len(tr.callback_handler.callbacks) == 2
    tr2 = _trainer([DefaultFlowCallback, w, PrinterCallback])  # already passed in `callbacks`
    w.attach(tr2)
    assert tr2.callback_handler.callbacks == [tr2.callback_handler.callbacks[0], w]


def test_real_trainer(tmp_path: Any) -> None:
    """A real `transformers.Trainer` (a tiny random GPT-2 on the CPU, 6 steps): the widget gets
    the real event sequence, `attach` removes the trainer's own bar, tokens/s comes from the logs."""
    import torch
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=16))
    ids = torch.randint(0, 64, (24, 8)).tolist()
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], max_steps=6, logging_steps=2,
                             per_device_train_batch_size=4, use_cpu=True, save_strategy="no",
                             include_num_input_tokens_seen=True)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": ids, "labels": ids}))
    w = TrainingProgressWidget(mode="widget", auto_display=False).attach(trainer).callback_handler.callbacks[-1]
    assert isinstance(w, TrainingProgressWidget)
    assert not any(isinstance(c, (ProgressCallback, PrinterCallback)) for c in trainer.callback_handler.callbacks)
    with w:
        trainer.train()
    assert (w.status, w.bar.value, w.bar.max, w.bar.bar_style) == ("done", 6, 6, "success")
    assert [s for s, _ in w.losses] == [2, 4, 6] and points(w.curve.value) == 3
    assert w.tokens_per_second is not None and w.tokens_per_second > 0 and "tok/s" in w.stats.value
    assert w.train_loss is not None and "done: 6/6 steps" in w.label.value
