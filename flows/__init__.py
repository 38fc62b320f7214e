"""vamosjuntos-lakehouse: IBGE localidades + PNAD Contínua into a lake, answered with SQL."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vamosjuntos-lakehouse")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
