"""Tests of forge_nb.callbacks: ForgeProgressCallback with real transformers objects."""
from __future__ import annotations

from typing import Any

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import CallbackHandler

from forge_nb.callbacks import ForgeProgressCallback, ProgressFn


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

