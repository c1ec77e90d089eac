"""Automatic roto-matte pipeline: plate -> detections -> frame masks -> tracked layers
-> filtered layers -> EXR mattes, each stage a Dagster asset stored in Zarr."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("matte-pipeline")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
