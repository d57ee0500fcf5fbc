"""The commands built on the stages: sweep, refine, baseline (closed-form models over a parameter), the baseline
study, calibrate, and the recipes' shared study definitions. `freqdiff.cli` dispatches to them."""
