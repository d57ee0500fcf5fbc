"""Figures on disk: saved atomically, as 256-colour PNGs (a plot's few colours survive at a third of the size)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from freqdiff.core.io import TEXT, atomic_path


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Save a matplotlib figure atomically and close it; text that is not valid UTF-8 (a path's bytes) shows as U+FFFD."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    kind = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        try:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind)
        except (UnicodeError, TypeError):  # a path's bytes in a text; walking every artist costs more than drawing
            for text in fig.findobj(Text):
                text.set_text(text.get_text().encode(**TEXT).decode("utf-8", "replace"))
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind)
        if kind == "png":
            compact_png(tmp)
    plt.close(fig)


def compact_png(path: str | os.PathLike[str]) -> None:
    """Rewrite a PNG with a 256-colour palette: a plot's few colours survive, the file is ~3x smaller."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, format="png", optimize=True)
