"""Exception types raised by :mod:`core`.

Every error the library raises on bad input derives from :class:`XaiError`, so a UI can catch one
type and show ``str(error)`` as a one-line, actionable message.
"""
from __future__ import annotations


class XaiError(Exception):
    """Base class of every error raised on bad input or a missing resource."""


class UnknownNameError(XaiError, KeyError):
    """A registry lookup (dataset, architecture, method, layer) named something that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetError(XaiError):
    """A dataset is missing, incomplete, or its files are malformed."""


class CheckpointError(XaiError):
    """A model checkpoint or model card is missing, corrupt, or does not match its architecture."""


class TrainingError(XaiError):
    """Training could not run with the given settings."""


class ImageError(XaiError, ValueError):
    """An image (an upload, or a tensor given to the library) cannot be read or is unacceptable."""


class ImageTooLarge(ImageError):
    """An image over the byte or pixel limits (a decompression bomb included)."""


class ParameterError(XaiError, ValueError):
    """A method parameter is unknown or outside its declared range."""


class NotApplicableError(ParameterError):
    """An attribution method does not apply to this model's architecture (the method declares why)."""


class AttributionError(XaiError):
    """An attribution method failed or produced a non-finite map."""


class Cancelled(XaiError):
    """A long call was cancelled through its cancel token; nothing it computed is returned."""


class RunError(XaiError):
    """A whole-split run cannot start or continue: a refused plan (too slow without a sample), an output folder that
    holds another run, or a stored run that is unreadable."""


class RunRefused(RunError, ParameterError):
    """A whole-split run refused before it starts: too slow for that many images without a sample (the message has
    the estimate and what to ask for instead)."""
