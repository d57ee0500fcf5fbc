"""Training: one trainer for a run alone or many runs stacked, their members, their states, how runs are grouped."""
