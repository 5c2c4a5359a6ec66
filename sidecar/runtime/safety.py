"""Building and swapping a key's trading safety (:class:`sidecar.proxy.safety.Safety`) from its
config: the mode, the rolling windows (kept across a reload that leaves them as they were, so a
reload never empties a window), order expiry and the dead-man switch."""

from __future__ import annotations

from typing import Any

from sidecar.config.models import KeyConfig
from sidecar.policy.windows import compile_windows
from sidecar.proxy.deadman import DeadMan
from sidecar.proxy.pipeline import KeyRuntime
from sidecar.proxy.safety import Safety
from sidecar.proxy.windows import KeyWindows


def safety_status(safety: Safety) -> dict[str, Any]:
    """The :class:`~sidecar.ops.status.KeyStatus` fields of a key's safety."""
    windows = safety.windows
    return {
        "dead_man": tuple(safety.dead_man.status()) if safety.dead_man is not None else (),
        "windows_fallback": windows.fallback if windows is not None and windows.shared else None,
        "mode": safety.mode.value,
    }


def _windows(key: KeyConfig) -> KeyWindows | None:
    if not key.guards.windows:
        return None
    return KeyWindows(key.name, compile_windows(key.guards.windows), key.rate_limit)


def build_safety(key: KeyConfig, runtime: KeyRuntime) -> Safety:
    """A new key's safety; its dead man (if any) is started by :func:`start_safety`."""
    dead_man = DeadMan(runtime, key.dead_man) if key.dead_man is not None else None
    return Safety(key.mode, _windows(key), key.guards.order_ttl_ms, dead_man)


def start_safety(safety: Safety) -> None:
    if safety.dead_man is not None:
        safety.dead_man.start()


async def stop_safety(safety: Safety, *, disarm: bool | None = None) -> None:
    """Stop the dead man (``disarm``: its ``on_shutdown`` unless given) and close the windows."""
    if safety.dead_man is not None:
        await safety.dead_man.stop(disarm=disarm)
    await safety.close()


async def swap_safety(old: KeyConfig, new: KeyConfig, runtime: KeyRuntime) -> None:
    """A reload: the parts whose settings changed are replaced, the others kept as they are."""
    current = runtime.safety
    same_windows = (old.guards.windows, old.rate_limit) == (new.guards.windows, new.rate_limit)
    windows = current.windows if same_windows else _windows(new)
    dead_man = current.dead_man
    if old.dead_man != new.dead_man:
        if dead_man is not None:
            # Disarmed, so a scope left out of the new config (or a dead man removed) does not
            # cancel the orders of a bot that no longer asked for it; the new one arms at once.
            await dead_man.stop(disarm=True)
        dead_man = DeadMan(runtime, new.dead_man) if new.dead_man is not None else None
        if dead_man is not None:
            dead_man.start()
            dead_man.alive()  # the bot was alive a moment ago: arm at once
    runtime.safety = Safety(new.mode, windows, new.guards.order_ttl_ms, dead_man)
    if not same_windows and current.windows is not None:
        await current.windows.close()
