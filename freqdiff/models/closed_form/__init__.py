"""The registered closed-form models (freqdiff.models.MODELS): baselines that are computed, never trained.

empirical (the exact memorizer), smoothed_empirical (Scarvelis et al. 2023), els (Kamb & Ganguli 2024) and
nn_projection (a pull of any model's estimate toward its nearest training image). Each sets closed_form = True:
the pipeline does not wrap it in Preconditioned, and it answers model(x_t, level) -> output itself, through the
process contract only, so it works with every process and sampler. freqdiff.models imports this package.
"""
