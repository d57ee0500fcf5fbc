"""Sample quality (FID, KID) and memorization (f_mem) of generated images."""
from freqdiff.metrics.extractors import EXTRACTORS, Extractor, get_extractor
from freqdiff.metrics.fid import FidResult, compute_fid, reference_stats
from freqdiff.metrics.fmem import FmemResult, fmem, quantize_uint8, two_nearest

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "FidResult",
    "FmemResult",
    "compute_fid",
    "fmem",
    "get_extractor",
    "quantize_uint8",
    "reference_stats",
    "two_nearest",
]
