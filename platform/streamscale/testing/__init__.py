"""Helpers shared by tests and benchmarks: run the platform in-process, make configs."""

from ._platform import RunningPlatform, make_config, running_platform

__all__ = ["RunningPlatform", "make_config", "running_platform"]
