"""The landing zone: files as they arrive, and their lossless load into bronze tables."""

from etl_platform.landing.bronze import BronzeSpec, BronzeLoader, FileLoad
from etl_platform.landing.files import LandingFile, LandingZone, discover_files

__all__ = ["BronzeSpec", "BronzeLoader", "FileLoad", "LandingFile", "LandingZone", "discover_files"]
