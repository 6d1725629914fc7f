"""Test doubles shared by the test modules: a clock that moves only when told, and a fake training
run that drives a `TrainerCallback` the way a `transformers.Trainer` does."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class FakeClock:
    "A monotonic clock for tests: `clock()` returns `t` (seconds), which only `tick` (or setting `t`) moves."
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float) -> None:
        self.t += dt


def fake_run(cb: TrainerCallback, args: TrainingArguments, clock: FakeClock, max_steps: int = 20,
             logging_steps: int = 5, step_s: float = 0.5, logs_extra: dict[str, Any] | None = None,
             with_loss: bool = True, stop_at: int | None = None, summary: bool = True, epochs: float = 2.0,
             loss: Callable[[int], float] | None = None, lr: float = 1e-4, train_loss: float = 0.75,
             runtime: float = 10.0, error: str = "boom at {step}") -> TrainerState:
    """Drive `cb` like a Trainer over `epochs` epochs: begin, `on_step_end` per step of `step_s` seconds,
    `on_log` every `logging_steps` (the learning rate falling from `lr`, the loss `loss(step)` — by default
    2/step-ish — and `logs_extra`, a value or a function of the step), the summary log, end. `stop_at`: raise
    `RuntimeError(error)` after that step."""
    state, control = TrainerState(max_steps=max_steps, num_train_epochs=epochs), TrainerControl()
    cb.on_train_begin(args, state, control)
    for step in range(1, max_steps + 1):
        clock.tick(step_s)
        state.global_step, state.epoch = step, epochs * step / max_steps
        cb.on_step_end(args, state, control)
        if step == stop_at:
            raise RuntimeError(error.format(step=step))
        if step % logging_steps == 0:
            logs: dict[str, Any] = {"learning_rate": lr * (1 - step / max_steps), "epoch": state.epoch}
            if with_loss:
                logs["loss"] = loss(step) if loss else 2.0 / step * logging_steps
            for k, v in (logs_extra or {}).items():
                logs[k] = v(step) if callable(v) else v
            cb.on_log(args, state, control, logs=logs)
    if summary:
        cb.on_log(args, state, control, logs={"train_runtime": runtime, "train_loss": train_loss, "epoch": state.epoch})
    cb.on_train_end(args, state, control)
    return state


def demo_run(cb: TrainerCallback, args: TrainingArguments, clock: FakeClock, max_steps: int = 30,
             logging_steps: int = 3, step_s: float = 0.5, tokens_per_step: int | None = 512,
             stop_at: int | None = None) -> TrainerState:
    """The demo run of nbs/api/10_progress.ipynb (its `fake_run`): 3 epochs, a falling loss with a little noise,
    `grad_norm`, TRL's `num_tokens` (`tokens_per_step` a step), a summary log with `train_loss` 1.1, the end;
    `stop_at`: raise `RuntimeError("fake failure at step N")` after that step."""
    extra: dict[str, Any] = {"grad_norm": 1.0}
    if tokens_per_step: extra["num_tokens"] = lambda step: float(tokens_per_step * step)
    return fake_run(cb, args, clock, max_steps, logging_steps, step_s, extra, stop_at=stop_at, epochs=3, lr=2e-4,
                    loss=lambda step: 0.4 + 2.0 / (1 + step / 4) + 0.05 * (step % 2), train_loss=1.1,
                    runtime=step_s * max_steps, error="fake failure at step {step}")
