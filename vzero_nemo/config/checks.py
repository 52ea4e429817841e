"""The one check every config section's `validate()` uses."""


def require(ok: bool, message: str) -> None:
    """Raise ValueError(message) unless `ok`; the message names the bad value and the fix."""
    if not ok:
        raise ValueError(message)
