"""Run configuration: dataclasses for every setting, one command-line syntax, JSON beside the results.

Flags: a scalar setting is `--name value` (e.g. `--n 16 --steps 2000`); a component is chosen with
`--dataset digits` and its parameters are set with `--dataset.resize 16`.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from freqdiff.core.registry import (SEED_MAX, Component, FreqdiffError, Registry, _closest, check_fields, param,
                                     parse_value)


MAX_THREADS = 1024  # torch's CPU threads: more than any machine's cores (torch.set_num_threads overflows past 2^31)


@dataclass
class DataConfig:
    """Which images are trained on and which are held out."""

    n: int = param(16, ge=2)  # training-set size
    test_size: int = param(256, ge=1)  # held-out images, taken from the end of the pool (the paper: last 2048)
    # nested: the first n of a seeded permutation; disjoint: images i*n..(i+1)*n
    subset: str = param("nested", choices=("nested", "disjoint"))
    subset_index: int = param(0, ge=0)  # i for subset=disjoint
    data_seed: int = param(0, ge=0, le=SEED_MAX)  # permutation seed for subset=nested
    center: bool = True  # subtract the training mean per channel, as the paper does


@dataclass
class TrainConfig:
    """Optimisation, checkpoints and logging; tau is counted in optimizer steps."""

    steps: int = param(2000, ge=1)
    batch_size: int = param(512, ge=1)  # the batch is min(n, batch_size), as in the paper
    optimizer: str = param("adam", choices=("adam", "sgd"))  # the paper: sgd, lr 0.01, momentum 0.95
    lr: float = param(1e-3, gt=0)
    momentum: float = param(0.95, ge=0, lt=1)
    ema: float = param(0.0, ge=0, lt=1)  # EMA decay; 0 disables EMA (the paper uses none)
    grad_clip: float = param(0.0, ge=0)  # max gradient norm; 0 disables clipping
    mixed_precision: str = param("no", choices=("no", "fp16", "bf16"))  # through accelerate; fp16 needs a GPU
    seed: int = param(0, ge=0, le=SEED_MAX)
    threads: int = param(1, ge=0, le=MAX_THREADS)  # torch CPU threads (0: torch's default); 1: fastest for small U-Nets
    n_checkpoints: int = param(16, ge=1)  # log-spaced checkpoints between first_checkpoint and steps
    first_checkpoint: int = param(50, ge=1)
    save_every: int = param(250, ge=1)  # steps between resume states
    log_every: int = param(10, ge=1)
    tensorboard: bool = False
    eval_checkpoints: bool = False  # evaluate each checkpoint as soon as it is written
    keep_states: bool = True  # keep the resume state of every checkpoint (RUN/states/): `freqdiff refine` starts there


@dataclass
class EvalConfig:
    """How each checkpoint is measured (does not change training)."""

    n_samples: int = param(256, ge=2)
    grid_size: int = param(16, ge=1)  # samples in the PNG grid written at each checkpoint
    sample_seed: int = param(1234, ge=0, le=SEED_MAX)
    fixed_t: float = param(0.01, gt=0)  # OU time of the fixed-t losses (the paper: 0.01)
    loss_draws: int = param(5, ge=1)
    extractor: str = "auto"  # a name of the extractor registry (`freqdiff list`)
    fid_reference: str = param("test", choices=("test", "train"))
    k: float = param(1 / 3, gt=0, le=1)  # memorization threshold on d1/d2 (a ratio in [0, 1])
    quantize: bool = False  # quantize samples to uint8 before f_mem, as DiffMemorize
    use_ema: bool = True  # sample from the EMA weights when EMA is on
    spectral: bool = False  # per-band error against the training set's optimal score -> spectral.csv
    spectral_bands: int = param(4, ge=1)  # radial frequency bands of the spectral diagnostics
    folds: int = param(4, ge=1)  # disjoint (sample, reference) fold pairs: each quality value is their mean +- 2 sigma
    extractor_weights: str | None = None  # the extractor's weights file (flag: --extractor.weights PATH)


# The extractor is an eval setting, not a component: its weights flag reads like a component parameter.
FLAG_ALIASES = {"extractor.weights": "extractor_weights"}
SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


@dataclass
class RunConfig:
    """Everything that makes a run; written to RUN_DIR/config.json.

    Each Component field is chosen from the registry of the same kind (components.REGISTRIES), in pipeline order.
    """

    dataset: Component = field(default_factory=lambda: Component("digits"))
    process: Component = field(default_factory=lambda: Component("ddpm"))
    model: Component = field(default_factory=lambda: Component("unet"))
    regularizer: Component = field(default_factory=lambda: Component("none"))
    sampler: Component = field(default_factory=lambda: Component("ddim"))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def registry(self, component: str) -> Registry[Any]:
        # Imported here, not above: the registries import torch and every plug-in (~2.5 s), and this module must
        # stay light, since `freqdiff --help` reads it. There is no import cycle behind this.
        from freqdiff.commands.registries import REGISTRIES

        return REGISTRIES[component]

    def to_dict(self) -> dict[str, Any]:
        """JSON form with every component parameter resolved to its typed value."""
        out: dict[str, Any] = {}
        for name in COMPONENTS:
            comp: Component = getattr(self, name)
            out[name] = {"name": comp.name, "params": comp.resolved(self.registry(name))}
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return json.loads(json.dumps(out))  # tuples -> lists: equal to what config.json reads back

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config.json") -> "RunConfig":
        """The config of a JSON record as config.json holds it, validated: a damaged record (not an object, a
        component without a name, a value of the wrong JSON type, such as the string "16" for an int, or out of its
        range) is refused in one line naming `source` and what is wrong. Keys other than the settings (derived,
        axis) are the writers' own and pass."""
        try:
            return cls.from_values(raw, strict=True)
        except FreqdiffError as err:
            raise FreqdiffError(f"{source}: {err}") from None

    @classmethod
    def from_values(cls, raw: Any, strict: bool = False) -> "RunConfig":
        """The config of a record whose values are JSON values or, unless `strict`, command-line strings."""
        if not isinstance(raw, dict):
            raise FreqdiffError(f"expected an object of settings ({', '.join(COMPONENTS + tuple(SECTIONS))}), "
                                f"got {json_kind(raw)}")
        cfg = cls()
        for name in COMPONENTS:
            if name in raw:
                setattr(cfg, name, component_from_value(raw[name], name))
                if strict:
                    cfg.registry(name).params(cfg.component(name).name, cfg.component(name).params, strict=True)
        for name, section in SECTIONS.items():
            setattr(cfg, name, section_from_values(section, raw.get(name, {}), name, strict))
        cfg.validate()
        return cfg

    def component(self, name: str) -> Component:
        """The chosen component of kind `name` (one of COMPONENTS)."""
        return getattr(self, name)

    def validate(self) -> None:
        """Check every setting and component parameter against its declared range (one component at a time)."""
        for section in SECTIONS:
            check_fields(getattr(self, section))
        for name in COMPONENTS:
            getattr(self, name).resolved(self.registry(name))
        self.registry("extractor").entry(self.eval.extractor)


# The component settings, in pipeline order: the Component fields of RunConfig, listed nowhere else.
COMPONENTS = tuple(f.name for f in fields(RunConfig) if typing.get_type_hints(RunConfig)[f.name] is Component)


def json_kind(value: Any) -> str:
    """What a JSON value is, as read in a message: 'a list', 'null', 'a string', ..."""
    if value is None:
        return "null"
    kinds = ((bool, "true/false"), (dict, "an object"), (list, "a list"), (str, "a string"), ((int, float), "a number"))
    return next((kind for types_, kind in kinds if isinstance(value, types_)), type(value).__name__)


def component_from_value(value: Any, kind: str) -> Component:
    """A Component from its JSON record {"name": ..., "params": {...}}, or one line saying what the record lacks."""
    shape = '{"name": ..., "params": {...}}'
    if not isinstance(value, dict):
        raise FreqdiffError(f"{kind}: expected an object {shape}, got {json_kind(value)}")
    name, params = value.get("name"), value.get("params", {})
    if not isinstance(name, str) or not name:
        got = f"its name is {json_kind(name)}" if name is not None or "name" in value else "it has no name"
        raise FreqdiffError(f"{kind}: {got}; expected {shape} naming a {kind} (`freqdiff list`)")
    if not isinstance(params, dict):
        raise FreqdiffError(f"{kind} '{name}': expected an object of parameters, got {json_kind(params)}")
    return Component(name, dict(params))


def section_from_values(cls: type, values: Any, where: str, strict: bool = False) -> Any:
    """A settings dataclass (DataConfig, TrainConfig, EvalConfig) from strings or JSON values, type- and range-checked;
    strict (read from a file): JSON values of their own types only, named `where.setting` (else `--setting`)."""
    if not isinstance(values, dict):
        raise FreqdiffError(f"{where}: expected an object of settings, got {json_kind(values)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    for key in values:
        if key not in known:
            raise FreqdiffError(f"{where}: unknown setting '{key}'{_closest(key, known)}")
    name = (lambda k: f"{where}.{k}") if strict else (lambda k: f"--{k}")
    settings = cls(**{k: parse_value(v, hints[k], name(k), strict) for k, v in values.items()})
    check_fields(settings, where if strict else "")
    return settings


def flat_settings() -> dict[str, str]:
    """Map each scalar flag name to its section; flag names are unique across sections."""
    owner: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            assert f.name not in owner, f"flag --{f.name} is defined twice"
            owner[f.name] = section
    return owner


def split_argv(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split `--key value` / `--key=value` pairs from positional arguments; keys may contain dots."""
    positional, flags = [], {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            positional.append(token)
            i += 1
            continue
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise FreqdiffError(f"--{key}: missing value")
            value = argv[i + 1]
            i += 1
        key = FLAG_ALIASES.get(key, key)
        if key in flags:
            raise FreqdiffError(f"--{key} given twice")
        flags[key] = value
        i += 1
    return positional, flags


def apply_flags(cfg: RunConfig, flags: dict[str, str]) -> RunConfig:
    """Apply command-line flags to `cfg` (a component name resets that component's parameters)."""
    owner = flat_settings()
    raw = _raw(cfg)
    for key, value in flags.items():
        head, dot, param = key.partition(".")
        if head in COMPONENTS and not dot:
            if value != raw[head]["name"]:
                raw[head] = {"name": value, "params": {}}
        elif head in COMPONENTS:
            continue
        elif head in owner and not dot:
            raw[owner[head]][head] = value
        else:
            choices = sorted(owner) + list(COMPONENTS)
            raise FreqdiffError(f"unknown option --{key}{_closest(key, choices)}; see `freqdiff train --help`")
    for key, value in flags.items():
        head, dot, param = key.partition(".")
        if head in COMPONENTS and dot:
            raw[head]["params"][param] = value
    return RunConfig.from_values(raw)


def _raw(cfg: RunConfig) -> dict[str, Any]:
    """`cfg` as a dict with component parameters exactly as given (not yet resolved)."""
    out: dict[str, Any] = {n: {"name": getattr(cfg, n).name, "params": dict(getattr(cfg, n).params)} for n in COMPONENTS}
    out.update({n: dataclasses.asdict(getattr(cfg, n)) for n in SECTIONS})
    return out


def diff_configs(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON configs."""
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out
