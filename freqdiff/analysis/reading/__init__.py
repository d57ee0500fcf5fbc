"""Reading runs (layer 2 of freqdiff.analysis): curves from metrics.csv, one run's window, many runs' windows.

Imports only freqdiff.metrics.statistics from the analysis package; draws and writes nothing.
"""
