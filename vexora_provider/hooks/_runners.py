"""Runners: carry out the attempt driver's steps, blocking (sync hook) or on the event loop.

The two differ only in how they send and wait; every decision is the driver's, or, for a
sequence of calls such as creating a payout, the flow's (:meth:`SyncRunner.run_flow`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from vexora_provider.exceptions import VexoraError
from vexora_provider.hooks import _retry
from vexora_provider.hooks._driver import Call, Driver, Pause, Send, Wait
from vexora_provider.hooks._protocol import Answer, TransportFailure

__all__ = ["AsyncRunner", "Flow", "SyncRunner"]

T = TypeVar("T")

#: A sequence of calls decided step by step: yields the next call (or a wait), is sent the call's
#: result or thrown its error, returns the outcome.
Flow = Generator[Call[Any] | Wait, Any, T]


class SyncRunner:
    """
    Carries out a driver's steps with blocking calls (the sync hook).

    :param driver: the session's driver.
    :param send: sends one body to an endpoint and returns the answer, or raises
        :class:`~vexora_provider.hooks._protocol.TransportFailure`.
    :param limiter: the rate limiter every request waits for; a slot it hands out is given back
        as soon as the answer (or the failure) is in.
    """

    def __init__(self, driver: Driver, send: Callable[[str, bytes], Answer], limiter: _retry.Limiter) -> None:
        self.driver = driver
        self._send = send
        self._limiter = limiter
        self._check_lock = threading.Lock()

    def run(self, call: Call[T]) -> T:
        """Run ``call`` to its result or final error."""
        steps = self.driver.attempts(call)
        send, limiter = self._send, self._limiter
        try:
            step = next(steps)
            while True:
                if type(step) is Send:
                    lease = limiter.acquire()
                    try:
                        try:
                            answer = send(step.endpoint, step.body)
                        finally:
                            if lease is not None:
                                lease.release()
                    except TransportFailure as failure:
                        step = steps.throw(failure)
                    else:
                        step = steps.send(answer)
                elif type(step) is Wait:
                    _retry.sleep(step.seconds)
                    step = next(steps)
                elif type(step) is Pause:
                    limiter.pause(step.seconds)
                    step = next(steps)
                else:
                    self._check_credentials()
                    step = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def run_flow(self, flow: Flow[T]) -> T:
        """Run each call ``flow`` asks for, feeding back results and errors, to its outcome."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    _retry.sleep(step.seconds)
                    step = next(flow)
                    continue
                try:
                    result = self.run(step)
                except VexoraError as error:
                    step = flow.throw(error)
                else:
                    step = flow.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _check_credentials(self) -> None:
        with self._check_lock:
            check = self.driver.begin_check()
            if check is None:
                return
            try:
                self.run(check)
            except VexoraError:
                pass  # the driver has recorded what the check found
            finally:
                self.driver.end_check()


class AsyncRunner:
    """
    Carries out a driver's steps on the event loop (sessions, the trigger, the warehouse sync).

    :param driver: the session's driver.
    :param send: sends one body to an endpoint and returns the answer, or raises
        :class:`~vexora_provider.hooks._protocol.TransportFailure`.
    :param limiter: the rate limiter every request waits for; a slot it hands out is given back
        as soon as the answer (or the failure) is in.
    """

    def __init__(
        self, driver: Driver, send: Callable[[str, bytes], Awaitable[Answer]], limiter: _retry.AsyncLimiter
    ) -> None:
        self.driver = driver
        self._send = send
        self._limiter = limiter
        self._check_lock = asyncio.Lock()

    async def run(self, call: Call[T]) -> T:
        """Run ``call`` to its result or final error."""
        steps = self.driver.attempts(call)
        send, limiter = self._send, self._limiter
        try:
            step = next(steps)
            while True:
                if type(step) is Send:
                    lease = await limiter.acquire()
                    try:
                        try:
                            answer = await send(step.endpoint, step.body)
                        finally:
                            if lease is not None:
                                await lease.release()
                    except TransportFailure as failure:
                        step = steps.throw(failure)
                    else:
                        step = steps.send(answer)
                elif type(step) is Wait:
                    await _retry.asleep(step.seconds)
                    step = next(steps)
                elif type(step) is Pause:
                    await limiter.pause(step.seconds)
                    step = next(steps)
                else:
                    await self._check_credentials()
                    step = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def run_flow(self, flow: Flow[T]) -> T:
        """Run each call ``flow`` asks for, feeding back results and errors, to its outcome."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    await _retry.asleep(step.seconds)
                    step = next(flow)
                    continue
                try:
                    result = await self.run(step)
                except VexoraError as error:
                    step = flow.throw(error)
                else:
                    step = flow.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _check_credentials(self) -> None:
        async with self._check_lock:
            check = self.driver.begin_check()
            if check is None:
                return
            try:
                await self.run(check)
            except VexoraError:
                pass  # the driver has recorded what the check found
            finally:
                self.driver.end_check()
