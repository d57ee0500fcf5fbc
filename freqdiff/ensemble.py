"""Ensembles: K compatible runs trained as one vmapped network in one process, each writing its own run directory.

A window study is a grid of small runs (n x seeds x regularizer strengths); at the default scale a training
step costs Python and kernel-launch overhead, not arithmetic, so K runs stacked into one batched network train
several times faster than one after another. Members may differ in their seed, their n (own training subset,
own run length) and the numeric parameters of a regularizer that only changes the objective; everything else
is shared. Each member draws exactly the batches, diffusion steps, noise and dropout masks of `freqdiff train`
with its own config, so its weights match a single run up to float re-association inside the batched kernels,
and it writes an ordinary run directory (config.json, checkpoints, state.pt, log.jsonl, sample grids).

Members live in and out of the stack: the stack always holds the unfinished members at the lowest step, so
members that finish early drop out, and members resumed at different steps catch up before they merge.
Under `accelerate launch` the members are sharded over the ranks (member i on rank i mod R).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

import torch
from accelerate import Accelerator
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqdiff.checkpoint import (checkpoint_path, checkpoint_steps, claim_run_dir, keep_state, load_state,
                                 previous_state_path, save_state)
from freqdiff.config import RunConfig
from freqdiff.grids import save_grid
from freqdiff.io import RunLock, torch_load, torch_save
from freqdiff.pipeline import Pipeline, build_pipeline, set_cpu_threads
from freqdiff.process import DenoisingTerms
from freqdiff.registry import FreqdiffError
from freqdiff.regularizers import Regularizer
from freqdiff.samplers import draw_samples
from freqdiff.schedule import batch_indices, dropout_keys, step_seed
from freqdiff.stack import FlatStack, StackedModel
from freqdiff.trainer import batch_size, make_ema, make_optimizer, open_log

# The settings in which the members of one ensemble may differ (besides numeric regularizer parameters).
MEMBER_KEYS = {"data.n", "data.subset_index", "train.seed", "train.steps"}


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def check_members(configs: Sequence[RunConfig]) -> None:
    """Refuse runs that cannot share one stacked network, naming the first setting that differs."""
    if not configs:
        raise FreqdiffError("ensemble: no runs given")
    first = _flat(configs[0].to_dict())
    for cfg in configs[1:]:
        other = _flat(cfg.to_dict())
        for key in sorted(first.keys() | other.keys()):
            a, b = first.get(key), other.get(key)
            numeric = isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            if a == b or key in MEMBER_KEYS or (key.startswith("regularizer.params.") and numeric):
                continue
            raise FreqdiffError(f"ensemble: runs differ in {key} ({a!r} vs {b!r}); members may differ only in "
                                "n, seed, steps and numeric regularizer parameters")
    sizes = sorted({batch_size(cfg) for cfg in configs})
    if len(sizes) > 1:
        raise FreqdiffError(f"ensemble: members have batch sizes {sizes} (min(n, --batch_size)); they must share one")


def _wraps_model(regularizer: Regularizer) -> bool:
    return type(regularizer).wrap_model is not Regularizer.wrap_model


def check_shared_forward(members: Sequence["Member"]) -> None:
    """Regularizers that change the network or the optimizer cannot differ between members of one stack."""
    first = members[0]
    for member in members[1:]:
        reg, ref = member.pipe.regularizer, first.pipe.regularizer
        same_params = member.cfg.to_dict()["regularizer"] == first.cfg.to_dict()["regularizer"]
        if _wraps_model(reg) and not same_params:
            raise FreqdiffError(f"ensemble: regularizer '{member.cfg.regularizer.name}' changes the network, so its "
                                "parameters must be equal across members")
        if reg.optimizer_options() != ref.optimizer_options():
            raise FreqdiffError(f"ensemble: optimizer options {reg.optimizer_options()} vs {ref.optimizer_options()} "
                                "differ between members; they must be equal")


@dataclass
class Member:
    """One run of an ensemble: its config, directory and pipeline, and where it stands when out of the stack."""

    cfg: RunConfig
    run_dir: Path
    pipe: Pipeline
    lock: RunLock
    step: int
    optimizer_state: dict[str, Any] | None = None
    ema_state: dict[str, Any] | None = None
    checkpoints: set[int] = field(default_factory=set)
    log: TextIO | None = None
    last_log: tuple[float, int] = (0.0, 0)  # (time, step) of the last log record, for steps/s
    failed: str = ""

    @property
    def done(self) -> bool:
        return bool(self.failed) or self.step >= self.cfg.train.steps


def init_pipeline(cfg: RunConfig) -> Pipeline:
    """The run's components with the initial weights of its seed (exactly as `freqdiff train` makes them)."""
    torch.manual_seed(cfg.train.seed)
    return build_pipeline(cfg)


# ----------------------------------------------------------------------------- optimizer and EMA state


def stack_optimizer_states(states: Sequence[dict[str, Any]], stack: StackedModel) -> dict[str, Any]:
    """One optimizer state_dict for the stack from the members' single-run state_dicts (same parameter order)."""
    stacked: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(stack.parameters()):
        entries = [s["state"].get(index) for s in states]
        if entries[0] is None:
            continue
        stacked[index] = {key: (torch.stack([e[key] for e in entries])
                                if torch.is_tensor(value) and value.dim() == param.dim() - 1 else value)
                          for key, value in entries[0].items()}
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def member_optimizer_state(state: dict[str, Any], stack: StackedModel, k: int) -> dict[str, Any]:
    """Member k's slice of the stack's optimizer state_dict, loadable by its single-run optimizer."""
    params = list(stack.parameters())
    sliced = {index: {key: (value[k].clone() if torch.is_tensor(value) and value.dim() == params[index].dim()
                            else value.clone() if torch.is_tensor(value) else value)
                      for key, value in entry.items()}
              for index, entry in state["state"].items()}
    return {"state": sliced, "param_groups": state["param_groups"]}


def stack_ema_states(states: Sequence[dict[str, Any]], stack: StackedModel) -> dict[str, Any]:
    """An AveragedModel state_dict of the stack from the members' single-run AveragedModel state_dicts."""
    out = {"n_averaged": states[0]["n_averaged"]}
    for i, name in enumerate(stack.param_names):
        out[f"module.stacked.{i}"] = torch.stack([s[f"module.{name}"] for s in states])
    for i, name in enumerate(stack.buffer_names):
        out[f"module.buffer{i}"] = torch.stack([s[f"module.{name}"] for s in states])
    return out


def member_ema_state(ema: nn.Module, k: int) -> dict[str, Any]:
    """Member k's slice of the stack's EMA, in the format of a single run's AveragedModel state_dict."""
    module: StackedModel = ema.module
    return {"n_averaged": ema.n_averaged.clone(), **{f"module.{n}": v for n, v in module.member_state(k).items()}}


# ----------------------------------------------------------------------------- the trainer


class EnsembleTrainer:
    """Trains a list of (config, run directory) pairs as stacks of their unfinished members."""

    def __init__(self, runs: Sequence[tuple[RunConfig, Path]], accelerator: Accelerator | None = None) -> None:
        check_members([cfg for cfg, _ in runs])
        first = runs[0][0].train
        self.accelerator = accelerator or Accelerator(mixed_precision=first.mixed_precision)
        acc = self.accelerator
        set_cpu_threads(first.threads)
        self.device = acc.device
        self.members = [self._member(cfg, Path(d)) for cfg, d in list(runs)[acc.process_index::acc.num_processes]]
        if self.members:
            check_shared_forward(self.members)
        self._resume()
        self.active: list[Member] = []
        self.stack: StackedModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: nn.Module | None = None

    def _member(self, cfg: RunConfig, run_dir: Path) -> Member:
        pipe = init_pipeline(cfg)
        lock = claim_run_dir(run_dir, cfg, pipe.process.derived())
        pipe.process.to(self.device)
        pipe.model.to(self.device)
        pipe.split.train = pipe.split.train.to(self.device)
        t = cfg.train
        return Member(cfg, run_dir, pipe, lock, 0, checkpoints=set(checkpoint_steps(t.first_checkpoint, t.steps,
                                                                                      t.n_checkpoints)))

    def _resume(self) -> None:
        """Load each member's newest state. A member ahead of the others (killed while the group's states were
        being written) steps back to the group's step, its previous state or its initial weights, so the members
        continue together exactly as an uninterrupted ensemble would."""
        states = [load_state(m.run_dir) for m in self.members]
        steps = [int(s["step"]) if s is not None else 0 for s in states]
        common = min((step for m, step in zip(self.members, steps) if step < m.cfg.train.steps), default=0)
        for member, state, step in zip(self.members, states, steps):
            if common < step < member.cfg.train.steps:
                state = self._state_at(member, common)
            if state is not None:
                member.pipe.model.load_state_dict(state["model"])
                member.step, member.optimizer_state, member.ema_state = int(state["step"]), state["optimizer"], state["ema"]

    @staticmethod
    def _state_at(member: Member, step: int) -> dict[str, Any] | None:
        """The member's state at `step` if it still has it (None at step 0: its initial weights); else its newest."""
        if step == 0:
            return None
        previous = previous_state_path(member.run_dir)
        older = torch_load(previous) if previous.exists() else None
        return older if older is not None and older["step"] == step else load_state(member.run_dir)

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
        self.stack = self.optimizer = self.ema = None

    def _restack(self, active: list[Member]) -> None:
        """Stack `active` (members at one step): weights, optimizer state and EMA as a single run would hold them."""
        self._unstack()
        self.active = active
        if not active:
            return
        cfg = active[0].cfg
        self.stack = StackedModel([m.pipe.model for m in active]).to(self.device)
        optimizer = make_optimizer(cfg.train, self.stack, active[0].pipe.regularizer.optimizer_options())
        if active[0].optimizer_state is not None:
            optimizer.load_state_dict(stack_optimizer_states([m.optimizer_state for m in active], self.stack))
        self.optimizer = self.accelerator.prepare_optimizer(optimizer)
        self.ema = make_ema(self.stack, cfg.train.ema)
        if self.ema is not None and active[0].ema_state is not None:
            self.ema.load_state_dict(stack_ema_states([m.ema_state for m in active], self.stack))

    # ---- one step --------------------------------------------------------------------------
    def _global_batch(self, member: Member) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x0, diffusion levels, noise and dropout keys of the member's global batch at its current step."""
        cfg, split = member.cfg, member.pipe.split
        B = batch_size(cfg)
        x0 = split.train[batch_indices(len(split.train), B, member.step, cfg.train.seed).to(self.device)]
        generator = torch.Generator(device=self.device).manual_seed(step_seed(cfg.train.seed, member.step))
        t = member.pipe.process.sample_levels(B, generator, self.device)
        eps = torch.randn((B, *x0.shape[1:]), generator=generator, device=self.device)
        return x0, t, eps, dropout_keys(cfg.train.seed, member.step, B).to(self.device)

    def train_step(self) -> list[tuple[Tensor, dict[str, float]]]:
        """One optimizer step of every active member; returns each member's loss and logged parts."""
        acc, members = self.accelerator, self.active
        x0, t, eps, keys = (torch.stack(v) for v in zip(*(self._global_batch(m) for m in members)))
        x_t = torch.stack([m.pipe.process.add_noise(x0[k], t[k], eps[k]) for k, m in enumerate(members)])
        with acc.autocast():
            eps_hat = self.stack(x_t, t, keys)
            results = [m.pipe.regularizer.objective(DenoisingTerms(m.pipe.process, x0[k], t[k], eps[k], x_t[k],
                                                                   eps_hat[k]))
                       for k, m in enumerate(members)]
        B = x0.shape[1]
        acc.backward(sum(loss * B * 1 / B for loss, _ in results))  # the single trainer's scaling on one rank
        self._clip(members[0].cfg.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.stack)
        for member in members:
            member.step += 1
        return [(loss.detach(), parts) for loss, parts in results]

    def _clip(self, max_norm: float) -> None:
        """Each member's gradient clipped to norm max_norm on its own, as torch.nn.utils.clip_grad_norm_ does."""
        if max_norm <= 0:
            return
        grads = [p.grad for p in self.stack.parameters() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
        coef = (max_norm / (torch.linalg.vector_norm(norms, dim=1) + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(-1, *[1] * (g.dim() - 1)))

    # ---- after a step ----------------------------------------------------------------------
    def _record(self, results: list[tuple[Tensor, dict[str, float]]]) -> None:
        """Stop members whose loss is not finite; log the others (steps/s of the member, as a single run logs)."""
        now = time.perf_counter()
        for member, (loss, parts) in zip(self.active, results):
            value = float(loss)
            if not torch.isfinite(loss):
                member.failed = (f"{member.run_dir}: loss became {value} at step {member.step}; this member stopped "
                                 "(its last good state is its state.pt)")
                continue
            t = member.cfg.train
            if member.log is not None and (member.step % t.log_every == 0 or member.step == t.steps):
                rate = (member.step - member.last_log[1]) / max(now - member.last_log[0], 1e-9)
                member.last_log = (now, member.step)
                member.log.write(json.dumps({"step": member.step, "loss": value, **parts, "steps_per_s": rate}) + "\n")
                member.log.flush()

    def _save(self) -> None:
        """Checkpoints (weights, EMA, grid) then resume states of the members due at this step."""
        due = [k for k, m in enumerate(self.active) if m.step in m.checkpoints and not m.failed]
        for k in due:
            member = self.active[k]
            ema = self.ema.module.member_state(k) if self.ema is not None else None
            torch_save({"step": member.step, "model": self.stack.member_state(k), "ema": ema},
                       checkpoint_path(member.run_dir, member.step))
        if due and min(self.active[0].pipe.split.image_shape[1:]) > 1:
            self._save_grids(due)
        if any(k in due or m.step % m.cfg.train.save_every == 0 or m.step == m.cfg.train.steps
               for k, m in enumerate(self.active)):
            self._save_states()

    def _save_states(self) -> None:
        """Resume states of every active member at once, so members always hold states of common steps; a member
        at one of its checkpoints first keeps its state there (train.keep_states)."""
        optimizer_state = self.optimizer.state_dict()
        for k, member in enumerate(self.active):
            if member.failed:
                continue
            state = {"step": member.step, "model": self.stack.member_state(k),
                     "optimizer": member_optimizer_state(optimizer_state, self.stack, k),
                     "ema": member_ema_state(self.ema, k) if self.ema is not None else None, "trainer": "ensemble"}
            if member.step in member.checkpoints and member.cfg.train.keep_states:
                keep_state(state, member.run_dir)
            save_state(state, member.run_dir)

    def _save_grids(self, ks: list[int]) -> None:
        """Sample grids of members ks in one batched pass, from the EMA weights when EMA is on."""
        sampling = self.ema.module if self.ema is not None else self.stack
        chosen = sampling if len(ks) == sampling.members else sampling.select(ks)
        members = [self.active[k] for k in ks]
        cfg = members[0].cfg
        sampler = members[0].pipe.sampler
        if sampler.x0_range is not None:  # each member clamps to its own training data's range
            ranges = [m.pipe.split.x0_range for m in members]
            sampler = dataclasses.replace(sampler, x0_range=tuple(torch.tensor(v) for v in zip(*ranges)))
        samples = draw_samples(sampler, FlatStack(chosen), members[0].pipe.process, cfg.eval.grid_size,
                               members[0].pipe.split.image_shape, cfg.eval.sample_seed, replicas=len(ks))
        samples = samples if len(ks) > 1 else samples[None]
        for member, images in zip(members, samples):
            save_grid(member.pipe.split.to_unit(images), member.run_dir / "samples" / f"step_{member.step:08d}.png")

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> list[Path]:
        """Train every member to its last step; returns their run directories. Failed members are named at the end."""
        acc = self.accelerator
        bars = {id(m): tqdm(total=m.cfg.train.steps, initial=m.step, desc=f"train {m.run_dir.name}",
                            position=acc.process_index + i * acc.num_processes, dynamic_ncols=True, leave=True)
                for i, m in enumerate(self.members)}  # each rank shows its own members, at their global index
        for member in self.members:
            member.log = open_log(member.run_dir / "log.jsonl", member.step)
            member.last_log = (time.perf_counter(), member.step)
        try:
            while pending := [m for m in self.members if not m.done]:
                low = min(m.step for m in pending)
                active = [m for m in pending if m.step == low]
                if [id(m) for m in active] != [id(m) for m in self.active] or self.stack is None:
                    self._restack(active)
                results = self.train_step()
                self._record(results)
                self._save()
                for member, (loss, _) in zip(self.active, results):
                    bars[id(member)].update(1)
                    bars[id(member)].set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        finally:
            self._unstack()
            for member in self.members:
                if member.log is not None:
                    member.log.close()
                member.lock.release()
            for bar in bars.values():
                bar.close()
        failed = [m.failed for m in self.members if m.failed]
        if failed:
            raise FreqdiffError(f"ensemble: {len(failed)} member(s) stopped: {'; '.join(failed)}")
        return [m.run_dir for m in self.members]


def train_ensemble(runs: Sequence[tuple[RunConfig, Path]], accelerator: Accelerator | None = None) -> list[Path]:
    """Train (or resume) every (config, run directory) as one ensemble; finished members are left as they are."""
    return EnsembleTrainer(runs, accelerator).run()


# ----------------------------------------------------------------------------- grouping runs into ensembles

MAX_MEMBERS = 24  # beyond this a CPU gains nothing (bench/bench_ensemble.py) and a progress bar per member is noise
MEMORY_SHARE = 0.25  # the share of the device's memory an ensemble may plan for


def member_bytes(cfg: RunConfig) -> int:
    """A generous estimate of one member's memory in bytes: weights, gradients, two optimizer moments and an EMA
    (5 copies of the parameters), plus twice the activations of one forward pass at the run's batch size."""
    pipe = init_pipeline(cfg)
    sizes: list[int] = []
    leaves = [m for m in pipe.model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0))
             for m in leaves]
    B = batch_size(cfg)
    with torch.no_grad():
        pipe.model(torch.zeros(B, *pipe.split.image_shape), torch.zeros(B, dtype=torch.long))
    for hook in hooks:
        hook.remove()
    return 4 * (5 * sum(p.numel() for p in pipe.model.parameters()) + 2 * sum(sizes))


def device_memory(device: torch.device) -> int:
    """Free memory of a GPU, or the physical memory of the host."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def auto_group_size(cfg: RunConfig, runs: int, device: torch.device) -> int:
    """As many members as fit in MEMORY_SHARE of the device (member_bytes each), at most MAX_MEMBERS."""
    fit = int(MEMORY_SHARE * device_memory(device) // max(member_bytes(cfg), 1))
    return max(1, min(runs, MAX_MEMBERS, fit))


def changes_forward(cfg: RunConfig) -> bool:
    """Whether the run's regularizer changes the network or the optimizer (check_shared_forward): then runs may
    share a stack only with equal regularizer settings. Building the regularizer once tells."""
    regularizer = init_pipeline(cfg).regularizer
    return _wraps_model(regularizer) or bool(regularizer.optimizer_options())


def group_runs(configs: Sequence[RunConfig], size: int) -> list[list[int]]:
    """Indices of the runs, in groups of at most `size` that can share a stack (same batch size, and the same
    regularizer settings where changes_forward; runs in order). Each distinct regularizer setting is built once."""
    shared: dict[str, bool] = {}
    by_key: dict[tuple[int, str], list[int]] = {}
    for i, cfg in enumerate(configs):
        regularizer = json.dumps(cfg.to_dict()["regularizer"], sort_keys=True)
        if regularizer not in shared:
            shared[regularizer] = changes_forward(cfg)
        by_key.setdefault((batch_size(cfg), regularizer if shared[regularizer] else ""), []).append(i)
    return [group[j:j + size] for group in by_key.values() for j in range(0, len(group), size)]
