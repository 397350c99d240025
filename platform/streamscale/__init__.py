"""streamscale: a live streaming platform on trio, and the reference for how one scales."""

__version__ = "0.1.0"
