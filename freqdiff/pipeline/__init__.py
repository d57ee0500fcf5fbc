"""A run's components assembled from its config: every registry in pipeline order (components), then built and
checked against each other (build)."""
