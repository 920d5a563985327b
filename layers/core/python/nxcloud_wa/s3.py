"""How S3 says an object is not there: the one place that knows its error codes, for the campaign bucket's readers."""

from typing import Final

from botocore.exceptions import ClientError

MISSING_OBJECT_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
"""``GetObject`` answers a missing key ``NoSuchKey``; ``HeadObject`` has no body to name it, so botocore gives the bare
HTTP status (``404``, or ``NotFound`` from some endpoints)."""


def object_missing(exc: ClientError) -> bool:
    """Whether the failed call found no object under its key (not a denied or failed request)."""
    return str(exc.response.get("Error", {}).get("Code", "")) in MISSING_OBJECT_CODES
