"""Reading the generalization window off measured runs, in three layers that import one way only.

1. `statistics`: numbers in, numbers out (bootstrap intervals, mean +- 2 sigma, log-log slope fits).
2. `reading`: one run's curves and window, the windows of many runs, recipes compared at matched quality.
3. `reports`: figures, window.json, report.md and the `freqdiff compare` outputs.

A layer imports only the layers above it in this list. This file imports nothing, so
freqdiff.metrics can use `freqdiff.metrics.statistics` without a cycle.
"""
