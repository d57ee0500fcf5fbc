"""Figures and reports (layer 3 of freqdiff.analysis): window.json, figures, report.md, `freqdiff compare`.

The only layer that writes files; it reads runs through freqdiff.analysis.reading.
"""
