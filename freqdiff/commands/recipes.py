"""Named studies: a run configuration plus the grid of n and seeds it is measured over.

`accelerate launch recipes/NAME.py` and `freqdiff sweep --recipe NAME` run the same registered recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from freqdiff.core.registry import NoParams, Registry


@dataclass(frozen=True)
class Recipe:
    """Run flags (the `freqdiff train` syntax) and the default grid of a study."""

    flags: dict[str, str]
    n_grid: tuple[int, ...] = (4, 8, 16)
    seeds: tuple[int, ...] = (0,)
    steps_per_n: int = 0  # steps = max(--steps, steps_per_n * n): tau_mem grows like n, so must training
    vary: tuple[str, tuple[str, ...]] | None = None  # one run flag over several values, the first the reference

    def variants(self) -> list[tuple[str, dict[str, str]]]:
        """(directory name, flags) per value of `vary`, e.g. ('weight-0.1', {'regularizer.weight': '0.1'})."""
        if self.vary is None:
            return [("", {})]
        key, values = self.vary
        return [(f"{key.rsplit('.', 1)[-1]}-{value}", {key: value}) for value in values]


RECIPES: Registry[Recipe] = Registry("recipe")

# The paper's U-Net recipe scaled to a 2-core CPU: digits 8x8, the paper's U-Net at W=8 (0.26M parameters),
# DDPM linear schedule, Adam (the paper's appendix: same two phases as SGD, far fewer steps), a fixed batch of 8,
# DDIM 50 steps with x0_hat clamped to the pixel range, no EMA. Too slow a step for n above n* on a CPU (see
# CPU_MLP); the projection-baselines study, which needs the paper's model at small n, uses it.
CPU_UNET = {
    "dataset": "digits", "test_size": "256", "model": "unet", "model.width": "8",
    "optimizer": "adam", "lr": "1e-3", "batch_size": "8", "steps": "1500", "first_checkpoint": "50",
    "n_checkpoints": "14",
    "save_every": "500", "n_samples": "256", "grid_size": "36", "extractor": "auto", "sampler.steps": "50",
    "spectral": "true",
}

# The CPU-scale setting of the regime map (measured: results/regime/regime.md). The paper's U-Net costs 60-100 ms a
# step at batch 32 on one core, too slow for the tens of thousands of steps tau_mem needs at n in the hundreds, so
# the residual MLP (width 256, 3 blocks, 0.43M parameters) stands in. Full batch up to 512 as the paper's
# min(n, 512): with a fixed batch of 128, tau_mem grew like n^1.7 from n = 128 to 362 (minibatch noise delays
# copying once n > batch); full batch gives n = 128 -> 256 about linear. Adam lr 1e-3 (2e-3 and 5e-4 pass the
# quality gate later at n = 1024); EMA 0.995, a deviation from the paper: without it Adam's weight noise makes
# recognizability flicker across the gate from one checkpoint to the next, and its lag (~200 steps) is small
# beside tau_mem; 512 DDIM-50 samples per checkpoint (the gate's error and f_mem's detection floor shrink with them).
CPU_MLP = {
    "dataset": "digits", "test_size": "256", "model": "mlp", "model.width": "256", "model.blocks": "3",
    "optimizer": "adam", "lr": "1e-3", "batch_size": "512", "ema": "0.995", "steps": "4000",
    "first_checkpoint": "250", "n_checkpoints": "20", "save_every": "1000", "n_samples": "512", "grid_size": "36",
    "extractor": "auto", "sampler.steps": "50", "spectral": "true",
}

# The paper's CelebA setup (GPU): 32x32 grayscale, W=32, DDPM linear betas T=1000, SGD lr 0.01 momentum 0.95, batch
# min(n, 512), 40 log-spaced checkpoints to 2M steps, 10k samples, DDIM 100 steps, the last 2048 images held out;
# the images from --dataset.root DIR (torchvision's layout: DIR/celeba/img_align_celeba/, list_eval_partition.txt).
PAPER_CELEBA = {
    "dataset": "celeba", "dataset.resolution": "32", "dataset.grayscale": "true", "test_size": "2048",
    "subset": "disjoint", "model": "unet", "model.width": "32", "optimizer": "sgd", "lr": "0.01",
    "momentum": "0.95", "batch_size": "512", "steps": "2000000", "first_checkpoint": "250",
    "n_checkpoints": "40", "save_every": "20000", "n_samples": "10000", "sampler.steps": "100",
    "sampler.clip_x0": "false",
    "extractor": "inception", "mixed_precision": "bf16",
}
# The paper's setup on CIFAR-10: its 32x32 RGB images (d = 3072; --dataset.grayscale true gives the paper's d = 1024),
# the official test batch held out (split all: test_batch last), the paper's U-Net as diffusers' UNet2DModel.
PAPER_CIFAR10 = {**{k: v for k, v in PAPER_CELEBA.items() if not k.startswith(("dataset.", "model."))},
                 "dataset": "cifar10", "dataset.split": "all", "test_size": "10000",
                 "model": "diffusers_unet", "model.preset": "paper"}
# n >= 512 share the batch of 512 (min(n, 512)), so the four runs train as one vmapped stack; tau_mem ~ 300 n SGD
# steps at W=32 (the paper) puts n = 4096's near 1.2M, inside the 2M steps.
PAPER_N = (512, 1024, 2048, 4096)

# Where the baseline memorizes, from its per-band spectral diagnostics (results/regime/n00128-seed0/spectral.csv,
# n = 128; n = 256 alike): at OU times 0.01 and 0.1 the error against the empirical (memorizing) score falls
# fastest in the band above 0.35 cycles/pixel (t = 0.01: x3.5 from tau = 250 to 3457, against x1.7 below 0.18;
# t = 0.1: x10 against x3), while at t = 1 that band is the last to approach it (spectral bias). So the Fourier
# recipes act above 0.35 cycles/pixel, at OU times <= 0.1 only (DDPM steps <= 136 of 1000).
SMALL_NOISE = {"regularizer.t_max": "0.1", "regularizer.cutoff": "0.35"}
# The strength studies run at the smallest n of the baseline (n = 128, window ratio ~1.8), the first value the
# baseline itself. A study that carries a verdict has 5 seeds: with 3, an exact permutation test cannot go below
# p = 0.1 and a t interval has 2 degrees of freedom (ensembles make the extra seeds cheap).
STUDY_N = (128,)
STUDY_SEEDS = (0, 1, 2, 3, 4)


# The strength and process studies train 28 n steps (n = 128: the 4000-step floor), enough for tau_mem at n = 128.
STUDY_STEPS_PER_N = 28


@RECIPES.register("baseline", NoParams)
def baseline(params: NoParams, **_: object) -> Recipe:
    """The paper's recipe (plain MSE) over a factor 4 in n: 128, 256, 512 (n* lies in (128, 256]), 6 seeds, 40 n steps
    (the one-seed map copied nothing at n = 512 by step 13267 = 26 n)."""
    return Recipe(flags=CPU_MLP, n_grid=(128, 256, 512), seeds=tuple(range(6)), steps_per_n=40)


def study_base() -> Recipe:
    """The baseline as the strength and process studies run it: STUDY_N, STUDY_SEEDS, STUDY_STEPS_PER_N."""
    return replace(baseline(NoParams()), n_grid=STUDY_N, seeds=STUDY_SEEDS, steps_per_n=STUDY_STEPS_PER_N)


def strength_study(flags: dict[str, str], vary: tuple[str, tuple[str, ...]]) -> Recipe:
    """The study base with extra flags, one run flag varied (its first value equivalent to the baseline)."""
    base = study_base()
    return replace(base, flags={**base.flags, **flags}, vary=vary)


@RECIPES.register("fourier_penalty", NoParams)
def fourier_penalty(params: NoParams, **_: object) -> Recipe:
    """MSE + weight * the energy of x0_hat above 0.35 cycles/pixel at OU times <= 0.1; weight 0 (baseline), 0.3, 3."""
    return strength_study({"regularizer": "fourier_penalty", "regularizer.target": "x0", **SMALL_NOISE},
                          ("regularizer.weight", ("0", "0.3", "3")))


@RECIPES.register("spectral_filter", NoParams)
def spectral_filter(params: NoParams, **_: object) -> Recipe:
    """x0_hat low-passed above 0.35 cycles/pixel (hard mask), in training and sampling, at OU times <= t_max:
    t_max 0 (never: the baseline), 0.03, 0.1."""
    flags = {"regularizer": "spectral_filter", "regularizer.target": "x0", "regularizer.cutoff": "0.35"}
    return strength_study(flags, ("regularizer.t_max", ("0", "0.03", "0.1")))


@RECIPES.register("frequency_weighted", NoParams)
def frequency_weighted(params: NoParams, **_: object) -> Recipe:
    """The MSE down-weighted above 0.35 cycles/pixel at OU times <= 0.1; high_weight 1 (plain MSE), 0.3, 0.1."""
    return strength_study({"regularizer": "frequency_weighted_loss", **SMALL_NOISE},
                          ("regularizer.high_weight", ("1", "0.3", "0.1")))


def with_process(recipe: Recipe, process: str, sampler: dict[str, str] | None = None) -> Recipe:
    """`recipe` with another process and, when given, another sampler (replacing every sampler flag)."""
    flags = recipe.flags
    if sampler is not None:
        flags = {key: value for key, value in flags.items() if key != "sampler" and not key.startswith("sampler.")}
    return replace(recipe, flags={**flags, "process": process, **(sampler or {})})


def heun_levels(recipe: Recipe) -> str:
    """Heun levels with at most the network evaluations of the recipe's sampler: 2 L - 1 <= steps (50 -> 25)."""
    return str((int(recipe.flags["sampler.steps"]) + 1) // 2)


@RECIPES.register("edm", NoParams)
def edm(params: NoParams, **_: object) -> Recipe:
    """The baseline with EDM's process and Heun's sampler on its rho = 7 grid, at the baseline's network evaluations."""
    base = study_base()
    return with_process(base, "edm", {"sampler": "heun", "sampler.steps": heun_levels(base)})


@RECIPES.register("blurring", NoParams)
def blurring(params: NoParams, **_: object) -> Recipe:
    """The baseline with blurring diffusion (DCT heat dissipation + cosine log-SNR) and its ancestral sampler."""
    base = study_base()
    return with_process(base, "blurring", {"sampler": "ddpm", "sampler.steps": base.flags["sampler.steps"]})


@RECIPES.register("equal_snr", NoParams)
def equal_snr(params: NoParams, **_: object) -> Recipe:
    """The baseline with DDPM's noise shaped per DCT frequency to the training subset's variance (equal SNR)."""
    return with_process(study_base(), "equal_snr")


@RECIPES.register("paper_celeba", NoParams)
def paper_celeba(params: NoParams, **_: object) -> Recipe:
    """The paper's CelebA 32x32 grayscale setup (GPUs; --dataset.root or --dataset folder --dataset.path)."""
    return Recipe(flags=PAPER_CELEBA, n_grid=PAPER_N, seeds=(0,))


@RECIPES.register("cifar10", NoParams)
def cifar10(params: NoParams, **_: object) -> Recipe:
    """The paper's setup on CIFAR-10 32x32 RGB with diffusers' U-Net (GPUs; --dataset.root)."""
    return Recipe(flags=PAPER_CIFAR10, n_grid=PAPER_N, seeds=(0,))


@RECIPES.register("projection_baselines", NoParams)
def projection_baselines(params: NoParams, **_: object) -> Recipe:
    """The baseline U-Net recipe, trained beside the closed-form baselines (recipes/projection_baselines.py runs both)."""
    return Recipe(flags=CPU_UNET, n_grid=(16,), steps_per_n=400)


@RECIPES.register("regime", NoParams)
def regime(params: NoParams, **_: object) -> Recipe:
    """The regime map: the MLP baseline over n = 16..1024 (one seed, 28 n steps): n* where tau_mem passes tau_gen."""
    return Recipe(flags=CPU_MLP, n_grid=(16, 32, 64, 128, 256, 512, 1024), seeds=(0,), steps_per_n=28)
