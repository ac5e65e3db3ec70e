"""Every domain failure belcheer raises, in one place.

Each error names the problem and, where there is one, the fix. The CLI maps them to exit codes
(``belcheer.cli``) and the API to HTTP statuses (``belcheer.api``), each in one table keyed on
these classes.
"""

from __future__ import annotations


class BelcheerError(Exception):
    """Base class: a problem with the user's input or workspace, not a bug.

    The message (English) names the problem for the CLI, logs and API clients. Where people read
    it in the web interface, ``code`` names its Mongolian/English text in ``api/messages.json``
    (``{field}`` placeholders filled from ``params``); without one, the text of the nearest class
    (``error.<ClassName>``) stands in for it in Mongolian.
    """

    #: process exit code used by the CLI
    exit_code: int = 1
    #: HTTP status used by the API
    http_status: int = 400

    def __init__(self, *args: object, code: str | None = None, **params: object) -> None:
        super().__init__(*args)
        self.code = code
        self.params = params


class ConfigError(BelcheerError):
    """Settings or command-line options that cannot work together."""

    exit_code = 2


class CatalogUnavailableError(ConfigError):
    """The catalog database cannot be reached (server down, network, credentials). At start-up it
    is a setting to fix; mid-job the worker stops the job and another claims it once the
    database is back (its heartbeat goes stale), so nothing is marked failed for it."""

    http_status = 503


class SchedulerUnavailableError(ConfigError):
    """The Dask cluster's scheduler cannot be reached at the configured address."""

    http_status = 503


class InputError(BelcheerError):
    """A file or value supplied by the user is unreadable, corrupt or out of range."""

    exit_code = 3
    http_status = 422


class UnsafePathError(InputError):
    """A path escapes the folder it must stay inside (``..``, absolute, symlink)."""

    http_status = 400


class TooLargeError(InputError):
    """An upload, archive or raster is larger than the configured limit."""

    http_status = 413


class NoUsableFramesError(InputError):
    """A survey in which validation left no frame to work with."""

    exit_code = 4


class CRSError(InputError):
    """A missing, unsupported or mismatched coordinate reference system."""


class NotFoundError(BelcheerError):
    """A survey, product, parcel or job that is not in the workspace catalog."""

    exit_code = 5
    http_status = 404


class ProductMissingError(NotFoundError):
    """A product is registered in the catalog but its file or object is gone from the store
    (deleted behind belcheer's back); the message names the product and where it was."""


class StorageError(BelcheerError):
    """The product store (a folder or an S3 bucket) cannot be read or written right now; the
    message names the store with credentials masked."""

    exit_code = 9
    http_status = 503


class ConflictError(BelcheerError):
    """Something already exists (a survey name, a parcel id) and would be overwritten."""

    exit_code = 6
    http_status = 409


class JobLostError(ConflictError):
    """A job this worker was running has been taken over by another worker (this one stopped
    sending heartbeats long enough to be presumed dead), or is no longer running."""


class ProcessingError(BelcheerError):
    """A stage ran but could not produce a trustworthy result (no overlap, no panel…)."""

    exit_code = 7
    http_status = 422


class UnsupportedCameraError(ProcessingError):
    """A multispectral camera belcheer has no radiometric model for (the message names it and
    the supported families)."""


class FormulaError(InputError):
    """A user band-math formula that is malformed or not allowed."""


class BandError(InputError):
    """A computation needs spectral bands the camera does not have."""


class AuthError(BelcheerError):
    """Missing or invalid credentials."""

    exit_code = 8
    http_status = 401


class PermissionDeniedError(BelcheerError):
    """The user is known but their role does not allow this."""

    exit_code = 8
    http_status = 403
