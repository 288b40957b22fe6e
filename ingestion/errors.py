"""Errors raised by ingestion, grouped by what the caller should do next.

    IngestionError
    +-- TransientIngestionError    retry the job later (target or market source unavailable)
    +-- PermanentIngestionError    retrying with the same input cannot succeed
        +-- WriteRejectedError     the write target rejected the request (auth, bucket, data)

Problems confined to one file or one ticker (an unreadable CSV, an HTML page in place of
quotes) are not raised: run_daily records them in the result and continues. Sources
signal them with SourceFileError (ticker failed) and TickerNotFoundError (ticker
not found).
"""

from __future__ import annotations


class IngestionError(Exception):
    """Base class of every error that run_daily raises on purpose."""


class TransientIngestionError(IngestionError):
    """A dependency failed in a way that may pass: unreachable, timed out, 429 or 5xx."""


class PermanentIngestionError(IngestionError):
    """The request cannot succeed as given, for example invalid parameters."""


class WriteRejectedError(PermanentIngestionError):
    """The write target responded with a 4xx status other than 429."""


class SourceFileError(Exception):
    """One source file or response cannot be read; run_daily records it per ticker."""


class TickerNotFoundError(LookupError):
    """The source has no data for a ticker; run_daily reports the ticker as not found.

    Only this error means "not found". Any other LookupError (an IndexError, a
    KeyError) from a source is a bug and propagates.
    """
