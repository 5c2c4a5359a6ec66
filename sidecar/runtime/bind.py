"""A listener that cannot open, named as the config names it: which listener, which setting.

``serve`` reports ``the admin listener cannot listen on 127.0.0.1:9901: Address already in use;
change admin.listen or stop what holds it`` rather than a bare ``OSError`` with an address.
"""

from __future__ import annotations

import os

from sidecar.config.models import Config


class ListenerUnavailable(OSError):
    """A listener that could not open (port taken, bad socket path, no permission); an OSError
    still, with the original's errno and text, so code that catches OSError keeps working."""

    def __init__(self, key: str | None, listen: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.key = key  # None: the admin listener
        self.listen = listen


def start_problem(config: Config, exc: OSError) -> str:
    """One line for an OSError that stopped the start, naming the setting to change."""
    if not isinstance(exc, ListenerUnavailable):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    if exc.key is None:
        which, setting = "the admin listener", "admin.listen"
    else:
        index = next((i for i, k in enumerate(config.keys) if k.name == exc.key), None)
        which = f"the listener of key {exc.key!r}"
        setting = f"keys[{index}].listen" if index is not None else "its listen"
    # os.strerror: the loop's own wording (uvloop's repeats the address) says no more.
    why = os.strerror(exc.errno) if exc.errno else exc.strerror
    return f"{which} cannot listen on {exc.listen}: {why}; change {setting} or stop what holds it"
