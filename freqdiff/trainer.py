"""Accelerate trainer: tau counted in optimizer steps, log-spaced checkpoints, exact resume, one or many ranks.

Every random draw of step s (batch, diffusion steps, noise, dropout) is seeded by (seed, s), so a
resumed run replays exactly what an uninterrupted one would have done; only weights, optimizer and EMA
need saving.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from freqdiff.baselines.optimal_score import is_closed_form
from freqdiff.checkpoint import (checkpoint_path, checkpoint_steps, claim_run_dir, keep_state, load_state, save_state,
                                 state_path)
from freqdiff.config import RunConfig, TrainConfig
from freqdiff.distributed import process_state
from freqdiff.grids import save_sample_grid
from freqdiff.io import RunLock, torch_load, torch_save, write_text
from freqdiff.models.dropout import keyed_dropout
from freqdiff.pipeline import Pipeline, build_pipeline, check_mixed_precision, set_cpu_threads
from freqdiff.registry import FreqdiffError
from freqdiff.schedule import batch_indices, dropout_keys, rank_slice, step_seed


def make_optimizer(cfg: TrainConfig, model: nn.Module, extra: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam(W) or SGD with momentum (the paper: SGD, lr 0.01, momentum 0.95); `extra` from the regularizer."""
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=extra.get("weight_decay", 0.0))
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=extra.get("weight_decay", 0.0))


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights, or None when decay is 0 (the paper)."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def batch_size(cfg: RunConfig) -> int:
    """The paper's batch: min(n, B)."""
    return min(cfg.data.n, cfg.train.batch_size)


class Trainer:
    """Trains one run directory; `run()` starts or resumes it."""

    def __init__(self, cfg: RunConfig, run_dir: Path, accelerator: Accelerator | None = None) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        check_mixed_precision(cfg.train.mixed_precision, process_state().device)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=cfg.train.mixed_precision,
            log_with="tensorboard" if cfg.train.tensorboard else None,
            project_dir=str(self.run_dir),
        )
        set_cpu_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.pipe: Pipeline = build_pipeline(cfg)  # checks every setting: a refused run writes nothing
        if is_closed_form(self.pipe.model):
            raise FreqdiffError(f"--model {cfg.model.name}: a closed-form model has nothing to train; measure it over "
                                f"its parameters with `freqdiff baseline --model {cfg.model.name}`")
        self.device = self.accelerator.device
        self.pipe.process.to(self.device)
        self.train_images = self.pipe.split.train.to(self.device)
        model = self.pipe.model.to(self.device)
        self.ema = make_ema(model, cfg.train.ema)
        self.optimizer = make_optimizer(cfg.train, model, self.pipe.regularizer.optimizer_options())
        self.lock: RunLock | None = None
        self.step = self._claim(model)
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.checkpoints = checkpoint_steps(cfg.train.first_checkpoint, cfg.train.steps, cfg.train.n_checkpoints)

    # ---- state -------------------------------------------------------------------------------
    def _claim(self, model: nn.Module) -> int:
        """The main rank claims the run (its lock, config.json); every rank then loads the resume state.
        A refusal reaches every rank, so none waits at a barrier the main rank never reaches."""
        refusal = None
        if self.accelerator.is_main_process:
            try:
                self.lock = claim_run_dir(self.run_dir, self.cfg, self.pipe.process.derived())
            except FreqdiffError as err:
                refusal = str(err)
        if self.accelerator.num_processes > 1:
            refusal = broadcast_object_list([refusal])[0]
        if refusal is not None:
            raise FreqdiffError(refusal)
        try:
            self.accelerator.wait_for_everyone()
            return self._load_state(model)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give up the run's one-writer lock (main rank)."""
        if self.lock is not None:
            self.lock.release()

    def _load_state(self, model: nn.Module) -> int:
        state = load_state(self.run_dir)
        if state is None:
            return 0
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        return int(state["step"])

    def _save_state(self, keep: bool) -> None:
        """state.pt, and with `keep` first the kept state of this checkpoint step (states/)."""
        state = {"step": self.step, "model": self._weights(), "optimizer": self.optimizer.state_dict(),
                 "ema": self.ema.state_dict() if self.ema is not None else None, "trainer": "single"}
        if keep:
            keep_state(state, self.run_dir)
        save_state(state, self.run_dir)

    def _weights(self) -> dict[str, Tensor]:
        return self.accelerator.unwrap_model(self.model).state_dict()

    def sampling_model(self) -> nn.Module:
        """The EMA weights when EMA is on, else the trained weights."""
        return self.ema.module if self.ema is not None else self.accelerator.unwrap_model(self.model)

    def _save_checkpoint(self) -> None:
        ema = self.ema.module.state_dict() if self.ema is not None else None
        torch_save({"step": self.step, "model": self._weights(), "ema": ema}, checkpoint_path(self.run_dir, self.step))
        if min(self.pipe.split.image_shape[1:]) > 1:
            save_sample_grid(self.run_dir, self.step, self.pipe, self.sampling_model(), self.cfg.eval)

    # ---- one step ----------------------------------------------------------------------------
    def local_batch(self) -> Tensor:
        """Indices of this rank's share of the global batch of step `self.step`."""
        acc = self.accelerator
        indices = batch_indices(len(self.train_images), batch_size(self.cfg), self.step, self.cfg.train.seed)
        return rank_slice(indices, acc.process_index, acc.num_processes)

    def train_step(self) -> tuple[Tensor, dict[str, float]]:
        """One optimizer step on this rank's share of the global batch of step `self.step`.

        Diffusion levels, noise and dropout keys are drawn for the whole global batch from (seed, step) and then
        split, so a run gives the same result on any number of processes (up to float reduction order).
        """
        acc, cfg = self.accelerator, self.cfg.train
        B = batch_size(self.cfg)
        idx = self.local_batch()
        x0 = self.train_images[idx.to(self.device)]
        generator = torch.Generator(device=self.device).manual_seed(step_seed(cfg.seed, self.step))
        t_all = self.pipe.process.sample_levels(B, generator, self.device)
        eps_all = torch.randn((B, *x0.shape[1:]), generator=generator, device=self.device)
        keys_all = dropout_keys(cfg.seed, self.step, B).to(self.device)
        t, eps, keys = (rank_slice(v, acc.process_index, acc.num_processes) for v in (t_all, eps_all, keys_all))
        with acc.autocast(), keyed_dropout(keys):
            loss, parts = self.pipe.regularizer.objective(self.pipe.process.denoise(self.model, x0, t, eps))
        # DDP averages gradients over ranks: weight by this rank's share so the result is the global mean.
        acc.backward(loss * len(idx) * acc.num_processes / B)
        if cfg.grad_clip > 0:
            acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(acc.unwrap_model(self.model))
        self.step += 1
        return loss.detach(), parts

    def _check_finite(self, loss: Tensor) -> None:
        finite = torch.isfinite(loss).float()
        if self.accelerator.num_processes > 1:
            finite = self.accelerator.reduce(finite, "sum") / self.accelerator.num_processes
        if float(finite) < 1:
            saved = torch_load(state_path(self.run_dir))["step"] if state_path(self.run_dir).exists() else None
            where = f"last good state: step {saved} in {state_path(self.run_dir)}" if saved is not None else "no state was saved"
            raise FreqdiffError(f"loss became {float(loss)} at step {self.step}; training stopped ({where})")

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until cfg.train.steps, writing checkpoints, grids and resume states; returns the run dir."""
        acc, cfg = self.accelerator, self.cfg.train
        main = acc.is_main_process
        if cfg.tensorboard:
            acc.init_trackers("freqdiff", config={k: str(v) for k, v in _flatten(self.cfg.to_dict()).items()})
        log = open_log(self.run_dir / "log.jsonl", self.step) if main else None
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not main, dynamic_ncols=True,
                   desc=f"train {self.run_dir.name}")
        last_time, last_step = time.perf_counter(), self.step
        while self.step < cfg.steps:
            loss, parts = self.train_step()
            self._check_finite(loss)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                rate = (self.step - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, self.step
                mean_loss = float(acc.reduce(loss, "mean")) if acc.num_processes > 1 else float(loss)
                record = {"step": self.step, "loss": mean_loss, **parts, "steps_per_s": rate}
                acc.log(record, step=self.step)
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{mean_loss:.4f}", steps_s=f"{rate:.1f}")
            bar.update(1)
            self._after_step(main)
        bar.close()
        if log is not None:
            log.close()
        acc.end_training()
        return self.run_dir

    def _after_step(self, main: bool) -> None:
        cfg = self.cfg.train
        at_checkpoint = self.step in self.checkpoints
        if main and at_checkpoint:
            self._save_checkpoint()  # before the state, so a resume never skips a checkpoint
        if main and (at_checkpoint or self.step % cfg.save_every == 0 or self.step == cfg.steps):
            self._save_state(keep=at_checkpoint and cfg.keep_states)
        if main and at_checkpoint and cfg.eval_checkpoints:
            from freqdiff.evaluate import evaluate_run

            evaluate_run(self.run_dir, steps=[self.step], progress=False)
        if at_checkpoint:
            self.accelerator.wait_for_everyone()


def open_log(path: Path, resume_step: int):
    """Open log.jsonl for appending, first dropping records past the step we resume from."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
        write_text(path, "".join(line + "\n" for line in kept))  # atomically: a kill here loses no record
    return open(path, "a")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def train(cfg: RunConfig, run_dir: Path) -> Path:
    """Train (or resume) the run in `run_dir`."""
    trainer = Trainer(cfg, run_dir)
    try:
        if trainer.step >= cfg.train.steps:
            if trainer.accelerator.is_main_process:
                print(f"{run_dir}: already trained to step {trainer.step}; nothing to do")
            return Path(run_dir)
        return trainer.run()
    finally:
        trainer.release()
