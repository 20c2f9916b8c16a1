"""The installed multivic's version, read from the package metadata (pyproject.toml is its one source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("multivic")
except PackageNotFoundError:  # the source folder on sys.path without an install
    __version__ = "0+unknown"
