"""RAP (Cao et al., ACL Findings 2024): low-rank modulation + asynchronous self-attention for
text-video retrieval, in a video-text dual encoder (:class:`readpvla.backbones.VideoCLIP`)."""

from .config import OFFSETS, SELECTIONS, WARPS, RAPConfig
from .layer import LowRankModulation, RAPContext, RAPModule, interpolate_offsets

__all__ = ["OFFSETS", "SELECTIONS", "WARPS", "LowRankModulation", "RAPConfig", "RAPContext",
           "RAPModule", "interpolate_offsets"]
