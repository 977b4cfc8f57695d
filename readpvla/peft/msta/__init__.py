"""MSTA (Chen et al., ETL4Video, CVPR 2025): a multimodal spatiotemporal adapter with a
bottleneck shared by the video and the text tower of a dual encoder
(:class:`readpvla.backbones.VideoCLIP`)."""

from .config import BRANCHES, INITS, WIDTH_RATIO, MSTAConfig
from .layer import MSTAModule

__all__ = ["BRANCHES", "INITS", "WIDTH_RATIO", "MSTAConfig", "MSTAModule"]
