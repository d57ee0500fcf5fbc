"""The trainer: tau counted in optimizer steps, log-spaced checkpoints, exact resume, one run or many, one rank or many.

Every run is a stack of networks (models/stack.py), a lone run a stack of one. A run once trained beside others
keeps the batched arithmetic for life, recorded in its states, so its resume and refinement are exact; a run
trained alone runs its network unbatched (about 1.2x faster at the default scale, equal up to float re-association).
Every random draw of step s (batch, diffusion levels, noise, dropout) is seeded by (seed, s), so a resumed run
replays exactly what an uninterrupted one would have done; only weights, optimizer and EMA are saved, always in
the format of a lone network.

Many runs (a window study's grid of n x seeds x strengths) train as stacks of their unfinished members: at the
default scale a step costs Python and kernel launches, not arithmetic, so K runs in one batched network train
several times faster than one after another. The stack always holds the unfinished members at the lowest step,
so members that finish early drop out and members resumed at different steps catch up before they merge.
Under `accelerate launch` one run is data-parallel over the ranks (each rank a share of every batch), and many
runs are sharded over them (run i on rank i mod R).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from einops import rearrange
from torch import Tensor
from tqdm.auto import tqdm

from freqdiff.core.checkpoint import (checkpoint_steps, claim_run_dir, keep_state, load_into, load_state,
                                      previous_state_path, read_state, run_hash, save_checkpoint, save_state,
                                      state_path)
from freqdiff.core.config import RunConfig
from freqdiff.core.distributed import process_state
from freqdiff.core.io import one_line_errors, torch_load
from freqdiff.core.registry import FreqdiffError
from freqdiff.core.schedule import batch_indices, dropout_keys, rank_slice, step_seed
from freqdiff.models.optimal_score import is_closed_form
from freqdiff.models.stack import StackedModel
from freqdiff.pipeline.build import check_mixed_precision, set_cpu_threads
from freqdiff.process.loss import DenoisingTerms
from freqdiff.samplers.grids import save_grid
from freqdiff.samplers.stacked import draw_member_samples
from freqdiff.train.log import open_log
from freqdiff.train.members import Member, batch_size, check_members, check_shared_forward, init_pipeline, shared_runs
from freqdiff.train.state import (clip_members, make_ema, make_optimizer, member_ema_state, member_optimizer_state,
                                  stack_ema_states, stack_optimizer_states, trained_batched)

OnCheckpoint = Callable[[Path, int], None]  # called by the writing rank after a run's checkpoint at a step


class Trainer:
    """Trains (config, run directory) pairs to their last step; a single pair is one run, data-parallel over ranks."""

    def __init__(self, runs: Sequence[tuple[RunConfig, Path]], accelerator: Accelerator | None = None,
                 on_checkpoint: OnCheckpoint | None = None, batched: bool = False, shard: bool = False) -> None:
        """`batched`: train even a lone run batched (refine does for a run that trained beside others). `shard`: a
        lone run too trains on one rank, never data-parallel (a sweep's workers: the same bits as one worker)."""
        check_members([cfg for cfg, _ in runs])
        first = runs[0][0].train
        check_mixed_precision(first.mixed_precision, process_state().device)
        self.accelerator = acc = accelerator or Accelerator(mixed_precision=first.mixed_precision)
        set_cpu_threads(first.threads)
        self.device, self.on_checkpoint = acc.device, on_checkpoint
        self.data_parallel = len(runs) == 1 and acc.num_processes > 1 and not shard
        self.writer = acc.is_main_process or not self.data_parallel  # writes its members' files
        mine = list(runs) if self.data_parallel else list(runs)[acc.process_index::acc.num_processes]
        batched = batched or len(runs) > 1  # by the group, not this rank's share: the rank count changes no bit
        self.members = [self._member(cfg, Path(d), batched) for cfg, d in mine]
        self.runs = {m.run_dir: run_hash(m.cfg.to_dict()) for m in self.members}  # what its files name (provenance)
        self._claim()
        self.active: list[Member] = []
        self.shared: list[slice] = []  # runs of active members with one process and regularizer (shared_runs)
        self.stack: StackedModel | None = None
        try:
            if self.members:
                check_shared_forward(self.members)
            self._resume()
            self._restack()
        except BaseException:
            self.release()  # a refused resume leaves the runs as they were, lock included
            raise

    # ---- members -----------------------------------------------------------------------------
    def _member(self, cfg: RunConfig, run_dir: Path, batched: bool) -> Member:
        pipe = init_pipeline(cfg)  # checks every setting: a refused run writes nothing
        if is_closed_form(pipe.model):
            raise FreqdiffError(f"--model {cfg.model.name}: a closed-form model has nothing to train; measure it over "
                                f"its parameters with `freqdiff baseline --model {cfg.model.name}`")
        pipe.process.to(self.device)
        pipe.model.to(self.device)
        pipe.split.train = pipe.split.train.to(self.device)
        t = cfg.train
        steps = set(checkpoint_steps(t.first_checkpoint, t.steps, t.n_checkpoints))
        return Member(cfg, run_dir, pipe, None, checkpoints=steps, batched=batched)

    def _claim(self) -> None:
        """The writing rank claims each run (its lock, config.json). Data-parallel, the refusal reaches every rank,
        so none waits at a barrier the main rank never reaches."""
        refusal = None
        try:
            for member in self.members if self.writer else []:
                member.lock = claim_run_dir(member.run_dir, member.cfg, member.pipe.process.derived())
        except FreqdiffError as err:
            refusal = str(err)
        if self.data_parallel:
            refusal = broadcast_object_list([refusal])[0]
            self.accelerator.wait_for_everyone()
        if refusal is not None:
            self.release()
            raise FreqdiffError(refusal, echoed=not self.writer)

    def release(self) -> None:
        """Give up the runs' one-writer locks."""
        for member in self.members:
            if member.lock is not None:
                member.lock.release()
                member.lock = None

    def _resume(self) -> None:
        """Load each member's newest state. A member ahead of the others (killed while the group's states were
        being written) steps back to the group's step, its previous state or its initial weights, so the members
        continue together exactly as an uninterrupted group would. A state of another run, past the run's last step,
        missing a key or of another architecture is refused in one line."""
        states = [load_state(m.run_dir, self.runs[m.run_dir], m.cfg.train.steps) for m in self.members]
        steps = [int(s["step"]) if s is not None else 0 for s in states]
        common = min((step for m, step in zip(self.members, steps) if step < m.cfg.train.steps), default=0)
        for member, state, step in zip(self.members, states, steps):
            if common < step < member.cfg.train.steps:
                state = state_at(member, common, self.runs[member.run_dir])
            if state is not None:
                load_into(member.pipe.model, state["model"], state_path(member.run_dir))
                member.step, member.optimizer_state = int(state["step"]), state["optimizer"]
                member.ema_state = state.get("ema")
                member.batched = member.batched or trained_batched(state)

    # ---- moving members in and out of the stack ------------------------------------------
    def _unstack(self) -> None:
        """Write the stacked weights, optimizer and EMA state back into the active members."""
        if self.stack is None:
            return
        optimizer_state = self.optimizer.state_dict()
        for k, member in enumerate(self.active):
            member.pipe.model.load_state_dict(self.stack.member_state(k))
            member.optimizer_state = member_optimizer_state(optimizer_state, self.stack, k)
            member.ema_state = member_ema_state(self.ema, k) if self.ema is not None else None
        self.stack = self.model = self.optimizer = self.ema = None

    def _restack(self) -> None:
        """Stack the unfinished members at the lowest step, if they are not the stack already: weights, optimizer
        state and EMA as their lone runs would hold them."""
        pending = [m for m in self.members if not m.done]
        low = min((m.step for m in pending), default=0)
        active = [m for m in pending if m.step == low]
        if self.stack is not None and [id(m) for m in active] == [id(m) for m in self.active]:
            return
        self._unstack()
        self.active, self.shared = active, shared_runs(active)
        if not active:
            return
        cfg = active[0].cfg
        batched = len(active) > 1 or any(m.batched for m in active)
        for member in active:
            member.batched = batched
        self.stack = StackedModel([m.pipe.model for m in active], batched).to(self.device)
        optimizer = make_optimizer(cfg.train, self.stack, active[0].pipe.regularizer.optimizer_options())
        if active[0].optimizer_state is not None:
            optimizer.load_state_dict(stack_optimizer_states([m.optimizer_state for m in active], self.stack))
        self.model = self.accelerator.prepare_model(self.stack) if self.data_parallel else self.stack
        self.optimizer = self.accelerator.prepare_optimizer(optimizer)
        self.ema = make_ema(self.stack, cfg.train.ema)
        if self.ema is not None and active[0].ema_state is not None:
            self.ema.load_state_dict(stack_ema_states([m.ema_state for m in active], self.stack))

    # ---- one step --------------------------------------------------------------------------
    def local_indices(self, member: Member) -> Tensor:
        """Training-image indices of this rank's share of the member's global batch at its step."""
        acc, cfg = self.accelerator, member.cfg
        indices = batch_indices(len(member.pipe.split.train), batch_size(cfg), member.step, cfg.train.seed)
        return rank_slice(indices, acc.process_index, acc.num_processes) if self.data_parallel else indices

    def local_batch(self, member: Member) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x0, levels, noise and dropout keys of this rank's share of the member's global batch. Levels, noise and
        keys are drawn for the whole global batch from (seed, step) and then split, so a run gives the same result
        on any number of processes (up to float reduction order)."""
        acc, cfg, B = self.accelerator, member.cfg.train, batch_size(member.cfg)
        x0 = member.pipe.split.train[self.local_indices(member).to(self.device)]
        generator = torch.Generator(device=self.device).manual_seed(step_seed(cfg.seed, member.step))
        level = member.pipe.process.sample_levels(B, generator, self.device)
        eps = torch.randn((B, *x0.shape[1:]), generator=generator, device=self.device)
        keys = dropout_keys(cfg.seed, member.step, B).to(self.device)
        if self.data_parallel:
            level, eps, keys = (rank_slice(v, acc.process_index, acc.num_processes) for v in (level, eps, keys))
        return x0, level, eps, keys

    def train_step(self) -> list[tuple[Tensor, dict[str, float]]]:
        """One optimizer step of every active member; returns each member's loss and logged parts. The members'
        batches lie end to end (rows k*B..(k+1)*B-1), and each run of members with one process and one regularizer
        (self.shared) is noised and scored at once: its objective holds one loss per member, that member's own."""
        acc, members = self.accelerator, self.active
        x0, level, eps, keys = (torch.stack(v) for v in zip(*(self.local_batch(m) for m in members)))
        B = x0.shape[1]
        x0, level, eps = (rearrange(v, "k b ... -> (k b) ...") for v in (x0, level, eps))
        runs = [(members[r.start].pipe, slice(r.start * B, r.stop * B), r.stop - r.start) for r in self.shared]
        x_t = torch.cat([pipe.process.add_noise(x0[rows], level[rows], eps[rows]) for pipe, rows, _ in runs])
        with acc.autocast():
            stacked = (rearrange(v, "(k b) ... -> k b ...", b=B) for v in (x_t, level))
            F = rearrange(self.model(*stacked, keys), "k b ... -> (k b) ...")  # in each process's parametrization
            results = [pipe.regularizer.objective(DenoisingTerms(pipe.process, x0[rows], level[rows], eps[rows],
                                                                 x_t[rows], F[rows], k)) for pipe, rows, k in runs]
        loss = torch.cat([loss.reshape(-1) for loss, _ in results])  # (K,): member k's objective
        if len(loss) != len(members):
            raise FreqdiffError(f"regularizer '{members[0].cfg.regularizer.name}': its objective gave {len(loss)} "
                                f"losses for {len(members)} runs; reduce per-example terms with terms.batch_mean")
        # Data-parallel, DDP averages gradients over ranks: weight by this rank's share to get the global mean.
        share = B * acc.num_processes / batch_size(members[0].cfg) if self.data_parallel else 1.0
        acc.backward(loss.sum() * share)
        acc.unscale_gradients()
        clip_members(self.stack, members[0].cfg.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.stack)
        for member in members:
            member.step += 1
        return list(zip(loss.detach(), member_parts(results)))

    # ---- after a step ----------------------------------------------------------------------
    def _record(self, results: list[tuple[Tensor, dict[str, float]]]) -> None:
        """Stop members whose loss is not finite; log the others (data-parallel: the mean over ranks)."""
        now = time.perf_counter()
        for member, (loss, parts) in zip(self.active, results):
            if self.data_parallel:
                loss = self.accelerator.reduce(loss, "mean")
            value = float(loss)
            if not torch.isfinite(loss):
                member.failed = f"{member.run_dir}: loss became {value} at step {member.step}; {last_good(member)}"
                continue
            t = member.cfg.train
            if member.log is not None and (member.step % t.log_every == 0 or member.step == t.steps):
                rate = (member.step - member.last_log[1]) / max(now - member.last_log[0], 1e-9)
                member.last_log = (now, member.step)
                member.log.write(json.dumps({"step": member.step, "loss": value, **parts, "steps_per_s": rate}) + "\n")
                member.log.flush()

    def _save(self) -> None:
        """Checkpoints (weights, EMA, grid), then resume states, of the members due at this step."""
        due = [k for k, m in enumerate(self.active) if m.step in m.checkpoints and not m.failed]
        if self.writer:
            for k in due:
                member = self.active[k]
                ema = self.ema.module.member_state(k) if self.ema is not None else None
                torch_save_checkpoint(member, self.stack.member_state(k), ema, self.runs[member.run_dir])
            if due and min(self.active[0].pipe.split.image_shape[1:]) > 1:
                self._save_grids(due)
            if any(k in due or m.step % m.cfg.train.save_every == 0 or m.step == m.cfg.train.steps
                   for k, m in enumerate(self.active)):
                self._save_states()
        if due and self.data_parallel:
            self.accelerator.wait_for_everyone()
        for k in due if self.writer and self.on_checkpoint is not None else []:
            self.on_checkpoint(self.active[k].run_dir, self.active[k].step)

    def _save_states(self) -> None:
        """Resume states of every active member at once, so members always hold states of common steps; a member
        at one of its checkpoints first keeps its state there (train.keep_states)."""
        optimizer_state = self.optimizer.state_dict()
        for k, member in enumerate(self.active):
            if member.failed:
                continue
            state = {"step": member.step, "run": self.runs[member.run_dir], "model": self.stack.member_state(k),
                     "optimizer": member_optimizer_state(optimizer_state, self.stack, k),
                     "ema": member_ema_state(self.ema, k) if self.ema is not None else None, "batched": member.batched}
            if member.step in member.checkpoints and member.cfg.train.keep_states:
                keep_state(state, member.run_dir)
            save_state(state, member.run_dir)

    def _save_grids(self, ks: list[int]) -> None:
        """Sample grids of members ks in one batched pass, from the EMA weights when EMA is on."""
        sampling = self.ema.module if self.ema is not None else self.stack
        chosen = sampling if len(ks) == sampling.members else sampling.select(ks)
        members = [self.active[k] for k in ks]
        pipe, e = members[0].pipe, members[0].cfg.eval
        samples = draw_member_samples(pipe.sampler, chosen, pipe.process, e.grid_size, pipe.split.image_shape,
                                      e.sample_seed, [m.pipe.split.x0_range for m in members])
        for member, images in zip(members, samples):
            save_grid(member.pipe.split.to_unit(images), member.run_dir / "samples" / f"step_{member.step:08d}.png")

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> list[Path]:
        """Train every member to its last step; returns their run directories. Failed members are named at the end."""
        acc, bars = self.accelerator, {}
        try:
            for member in self.members if self.writer else []:  # a damaged log is named before any bar is drawn
                member.log = open_log(member.run_dir / "log.jsonl", member.step)
                member.last_log = (time.perf_counter(), member.step)
            bars = {id(m): tqdm(total=m.cfg.train.steps, initial=m.step, desc=f"train {m.run_dir.name}",
                                position=acc.process_index + i * acc.num_processes, dynamic_ncols=True, leave=True,
                                disable=not self.writer)
                    for i, m in enumerate(self.members)}  # each rank shows its own members, at their global index
            while self.active:
                results = self.train_step()
                self._record(results)
                self._save()
                for member, (loss, _) in zip(self.active, results):
                    bars[id(member)].update(1)
                    bars[id(member)].set_postfix(loss=f"{float(loss):.4f}", refresh=False)
                self._restack()
        finally:
            self._unstack()
            for member in self.members:
                if member.log is not None:
                    member.log.close()
            self.release()
            for bar in bars.values():
                bar.close()
        failed = [m.failed for m in self.members if m.failed]
        if failed:
            raise FreqdiffError(f"{len(failed)} run(s) stopped: {'; '.join(failed)}", echoed=not self.writer)
        return [m.run_dir for m in self.members]


def member_parts(results: list[tuple[Tensor, dict[str, Tensor]]]) -> list[dict[str, float]]:
    """Each member's logged parts as numbers, from the objectives of the runs of members (one value per member)."""
    parts: list[dict[str, float]] = []
    for loss, logged in results:
        columns = {name: torch.as_tensor(value).reshape(-1).tolist() for name, value in logged.items()}
        parts += [{name: column[k] for name, column in columns.items()} for k in range(loss.numel())]
    return parts


def state_at(member: Member, step: int, run: str | None = None) -> dict[str, Any] | None:
    """The member's state at `step` if it still has it (None at step 0: its initial weights); else its newest."""
    if step == 0:
        return None
    previous, steps = previous_state_path(member.run_dir), member.cfg.train.steps
    older = read_state(previous, run, steps) if previous.exists() else None
    return older if older is not None and older["step"] == step else load_state(member.run_dir, run, steps)


def last_good(member: Member) -> str:
    """Where a stopped member's last good state is."""
    path = state_path(member.run_dir)
    saved = torch_load(path)["step"] if path.exists() else None
    return f"training stopped (last good state: step {saved} in {path})" if saved is not None else \
        "training stopped (no state was saved)"


def torch_save_checkpoint(member: Member, model: dict[str, Tensor], ema: dict[str, Tensor] | None,
                          run: str | None = None) -> None:
    """The weights (and EMA) of a member at its step, for evaluation, naming its step and its run (run_hash)."""
    save_checkpoint(member.run_dir, member.step, model, ema, run)


@one_line_errors  # a read-only run, a full disk: one line naming the path
def train_runs(runs: Sequence[tuple[RunConfig, Path]], accelerator: Accelerator | None = None,
               on_checkpoint: OnCheckpoint | None = None, batched: bool = False, shard: bool = False) -> list[Path]:
    """Train (or resume) every (config, run directory) together; finished runs are left as they are."""
    trainer = Trainer(runs, accelerator, on_checkpoint, batched, shard)
    if not trainer.active and trainer.writer:
        for member in trainer.members:
            print(f"{member.run_dir}: already trained to step {member.step}; nothing to do")
    return trainer.run()


def train(cfg: RunConfig, run_dir: Path, on_checkpoint: OnCheckpoint | None = None, batched: bool = False) -> Path:
    """Train (or resume) the run in `run_dir` (`batched`: as a stack's member, see Trainer)."""
    return train_runs([(cfg, Path(run_dir))], on_checkpoint=on_checkpoint, batched=batched)[0]
