"""painfactory's generator: seeded synthetic 3D pain faces, rendered and written as WebDataset shards."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("painfactory")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"
