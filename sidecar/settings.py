"""The base of every settings model: each part of the sidecar declares its own section of the
config file next to its code, and :mod:`sidecar.config` assembles them into the file's schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not silently fall back to a default); frozen, so a
    running part can never see its settings change under it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0)]

#: A validation message that ends so is reported without the offending value (it may hold a
#: secret, e.g. a password in a URL); see sidecar.config.loading.
NOT_SHOWN = "(value not shown)"


def refuse_removed(data: object, section: str, removed: dict[str, str]) -> object:
    """The body of a ``mode="before"`` validator: a setting that no longer exists is named with
    why it went, rather than reported as merely unknown."""
    if isinstance(data, dict):
        for name, why in removed.items():
            if name in data:
                raise ValueError(f"{section}.{name} was removed: {why}; delete the setting")
    return data
