"""Placeholder: replaced by the endpoint map and presets."""

PRESET_NAMES: tuple[str, ...] = (
    "read-only",
    "spot-only",
    "spot-read-only",
    "futures-only",
    "futures-read-only",
    "delivery-only",
    "options-only",
    "full-trading",
)
