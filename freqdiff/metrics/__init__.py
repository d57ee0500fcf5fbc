"""Sample quality (FD, KID, PRDC, recognizability, spectral distance) and memorization (f_mem) of generated images."""
from freqdiff.metrics.extractors import EXTRACTORS, Extractor, get_extractor
from freqdiff.metrics.fmem import FmemResult, fmem, fmem_robust, quantize_uint8, two_nearest

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "FmemResult",
    "fmem",
    "fmem_robust",
    "get_extractor",
    "quantize_uint8",
    "two_nearest",
]
