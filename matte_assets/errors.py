"""Errors the pipeline raises on bad input. Each message names the file, frame, key or
value at fault; the CLI prints it as one line and exits non-zero."""


class MatteError(Exception):
    """Base class: a user-facing failure with a one-line explanation."""


class ConfigError(MatteError):
    """matte.yaml or a show file is malformed (message names file and key)."""


class PlateError(MatteError):
    """A plate sequence is missing frames, unreadable or inconsistent (names the files)."""


class BackendError(MatteError):
    """A backend cannot serve the request (unknown prompt, missing weights, ...)."""


class StoreError(MatteError):
    """The Zarr store is missing a stage result or holds something unexpected."""


class DeliveryError(MatteError):
    """Writing the EXR deliveries failed or would overwrite a delivered file."""
