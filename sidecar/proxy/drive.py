"""Run a request's coroutine from a protocol callback, with no Task while it need not wait.

The key listener answers most requests without a single suspension but one: the upstream's
answer. A Task per request would cost its creation, a loop pass before its first step and
another to wake it when the answer's future is set. :func:`drive` instead steps the coroutine
itself from a plain callback (the listener's parser callback, or at the next loop pass for
requests read together: ``send(None)``), up to where it first waits:

- on a :class:`Prompt` (what the lean forwarder's connection returns for an exchange), it asks
  to be called back directly: the upstream connection, once it has parsed the answer, resumes
  the coroutine from its own callback, which writes the bot's answer. No Task, no loop pass;
- on anything else (a future, a bare ``yield``: a slot to wait for, a new upstream connection,
  a Redis store, transit signing over Vault, a market price), it hands the rest of the
  coroutine to a Task, which finishes it as asyncio always does. Code that needs a current
  Task before its first suspension (``asyncio.timeout``, a library's own timeouts) awaits
  :func:`sidecar.aio.task_from_here` first, which is such a bare yield.

There is one piece of logic either way (the pipeline's coroutine); the driver only decides who
steps it. A Task is also what resumes a :class:`Prompt` that a Task awaits: its completer sets
it like any future, and only a driver claims its ``then``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

log = logging.getLogger("sidecar.listener")

T = TypeVar("T")

# The Tasks that took a coroutine over, until they end: the loop itself keeps only weak
# references to its Tasks.
_TAKEN_OVER: set[asyncio.Task[Any]] = set()


class Pending(enum.Enum):
    """What :func:`drive` returns when the coroutine did not finish at once."""

    PENDING = 0


PENDING = Pending.PENDING


class Prompt(asyncio.Future[T]):
    """A future whose completer calls ``then`` (set by a driver that awaits it) right after
    setting it, instead of a callback scheduled for the next loop pass. The completer must
    call ``then`` from a plain callback, never from inside a Task (the driver's coroutine would
    run as part of that Task)."""

    __slots__ = ("then",)

    then: Callable[[], None] | None


def prompt(loop: asyncio.AbstractEventLoop) -> Prompt[Any]:
    waiter: Prompt[Any] = Prompt(loop=loop)
    waiter.then = None
    return waiter


def drive(coro: Coroutine[Any, Any, T], done: Callable[[T | None], None]) -> T | Pending | None:
    """Step ``coro`` now. Its result if it finished (``done`` is not called), else ``PENDING``
    and ``done`` gets the result later. ``None`` for a coroutine that raised (logged here):
    the caller's coroutine is expected to turn its own failures into results."""
    return _Driver(coro, done).advance()


class _Driver(Generic[T]):
    __slots__ = ("coro", "done")

    def __init__(self, coro: Coroutine[Any, Any, T], done: Callable[[T | None], None]) -> None:
        self.coro = coro
        self.done = done

    def advance(self) -> T | Pending | None:
        try:
            yielded = self.coro.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except Exception:
            log.exception("request failed")
            return None
        if isinstance(yielded, Prompt) and yielded.then is None:
            yielded.then = self.resume
        else:  # it must really wait: a Task takes the rest over
            task = asyncio.get_running_loop().create_task(_rest(self.coro, yielded))
            _TAKEN_OVER.add(task)
            task.add_done_callback(self._task_done)
        return PENDING

    def resume(self) -> None:
        """The :class:`Prompt` it waited on is set: on with the coroutine, from here."""
        result = self.advance()
        if result is not PENDING:
            self._done(result)

    def _done(self, result: T | None) -> None:
        # Called from another connection's callback (the upstream's): a failure here must not
        # become that connection's.
        try:
            self.done(result)
        except Exception:
            log.exception("answering failed")

    def _task_done(self, task: asyncio.Task[T]) -> None:
        # A done callback: it runs outside the Task, like every other step of the driver.
        _TAKEN_OVER.discard(task)
        if task.cancelled():
            self._done(None)
            return
        error = task.exception()
        if error is not None:
            log.error("request failed", exc_info=error)
            self._done(None)
            return
        self._done(task.result())


async def _rest(coro: Coroutine[Any, Any, T], yielded: object) -> T:
    return await _Resumed(coro, yielded)


class _Resumed(Generic[T]):
    """An awaitable that goes on with a coroutine already started and suspended on
    ``yielded``: what it yields, the Task awaits, and what the Task sends or throws goes on to
    it (the ``yield from`` of a coroutine that cannot be awaited twice)."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: object) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                try:
                    sent = yield yielded
                except BaseException as exc:  # the Task's cancellation above all: passed on
                    yielded = coro.throw(exc)
                else:
                    yielded = coro.send(sent)
            except StopIteration as stop:
                result: T = stop.value
                return result
