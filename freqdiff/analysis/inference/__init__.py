"""Recipe against reference over a few training seeds, with intervals whose coverage is what they claim.

Numbers in, numbers out, beside freqdiff.metrics.statistics (whose t_interval it reuses); its modules import
nothing from freqdiff but FreqdiffError, that module and each other. lifelines (with pandas and autograd: about
0.3 s to import, measured after scipy) is imported only inside a fit (aft.py).

Each tau per seed is interval-censored: (low, high) in optimizer steps, low None or 0 when it lies before the
first checkpoint (left-censored), high None or inf when the last checkpoint did not reach it (right-censored),
low == high for a point estimate.

- aft.py, `aft_factor`: the tau_mem factor (recipe / reference) from an interval-censored accelerated-failure-time
  model fitted by lifelines, with a Wald interval.
- censored_slope.py, `aft_slope`: tau ~ n^slope from an interval-censored log-normal AFT regression on log n, so
  runs censored at the largest n count instead of dropping out (which biases a least-squares slope low).
- permutation.py, `permutation_test`: an exact two-sided permutation test over every relabeling of the pooled
  seeds, with the Gehan score (valid for censored values).
- log_ratio.py, `log_ratio_interval`: exp(mean log ratio) with a Student-t interval (paired by seed, else Welch);
  `scale_free_width` and `width_difference`: w = log(tau_mem / tau_gen) per seed, and two recipes' mean w
  compared by a t-interval, in log units and as a factor on tau_mem / tau_gen.
- base.py, `interval_label`: the words for an interval; no percentile bootstrap over fewer than 10 seeds is called
  95%. Also the Inference result every method returns and the check of the seeds' brackets.

Every result names its method and the seeds on each side in `method`; `note` says what a reader must know
(why a factor is undefined, that a fit did not converge). Nothing is invented where the data give nothing:
an undefined factor or interval is None, with the reason.
"""
