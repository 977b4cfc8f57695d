"""READ, the recurrent adapter (paper Eq. 5-6)."""

from .config import READConfig
from .layer import READLayer

__all__ = ["READConfig", "READLayer"]
