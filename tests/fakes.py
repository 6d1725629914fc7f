"""Test doubles shared by the test modules: a clock that moves only when told, and a fake training
run that drives a `TrainerCallback` the way a `transformers.Trainer` does."""
from __future__ import annotations

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
             with_loss: bool = True, stop_at: int | None = None, summary: bool = True) -> TrainerState:
    """Drive `cb` like a Trainer: begin, `on_step_end` per step, `on_log` every `logging_steps`
    (loss 2/step-ish, learning rate, `logs_extra`), the summary log, end."""
    state, control = TrainerState(max_steps=max_steps, num_train_epochs=2), TrainerControl()
    cb.on_train_begin(args, state, control)
    for step in range(1, max_steps + 1):
        clock.tick(step_s)
        state.global_step, state.epoch = step, 2 * step / max_steps
        cb.on_step_end(args, state, control)
        if step == stop_at:
            raise RuntimeError(f"boom at {step}")
        if step % logging_steps == 0:
            logs: dict[str, Any] = {"learning_rate": 1e-4 * (1 - step / max_steps), "epoch": state.epoch}
            if with_loss:
                logs["loss"] = 2.0 / step * logging_steps
            for k, v in (logs_extra or {}).items():
                logs[k] = v(step) if callable(v) else v
            cb.on_log(args, state, control, logs=logs)
    if summary:
        cb.on_log(args, state, control, logs={"train_runtime": 10.0, "train_loss": 0.75, "epoch": state.epoch})
    cb.on_train_end(args, state, control)
    return state


def demo_run(cb: TrainerCallback, args: TrainingArguments, clock: FakeClock, max_steps: int = 30,
             logging_steps: int = 3, step_s: float = 0.5, tokens_per_step: int | None = 512,
             stop_at: int | None = None) -> None:
    """The demo run of nbs/api/10_progress.ipynb (its `fake_run`): 3 epochs, a falling loss with a little noise,
    `grad_norm`, TRL's `num_tokens` (`tokens_per_step` a step), a summary log with `train_loss` 1.1, the end;
    `stop_at`: raise `RuntimeError("fake failure at step N")` after that step."""
    state, control = TrainerState(max_steps=max_steps, num_train_epochs=3), TrainerControl()
    cb.on_train_begin(args, state, control)
    for step in range(1, max_steps + 1):
        clock.tick(step_s)
        state.global_step, state.epoch = step, 3 * step / max_steps
        cb.on_step_end(args, state, control)
        if step == stop_at:
            raise RuntimeError(f"fake failure at step {step}")
        if step % logging_steps == 0:
            logs: dict[str, Any] = {"loss": 0.4 + 2.0 / (1 + step / 4) + 0.05 * (step % 2), "grad_norm": 1.0,
                                    "learning_rate": 2e-4 * (1 - step / max_steps), "epoch": state.epoch}
            if tokens_per_step:
                logs["num_tokens"] = float(tokens_per_step * step)
            cb.on_log(args, state, control, logs=logs)
    cb.on_log(args, state, control, logs={"train_runtime": step_s * max_steps, "train_loss": 1.1, "epoch": state.epoch})
    cb.on_train_end(args, state, control)
