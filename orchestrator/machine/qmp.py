"""QMP through the qemu.qmp library, driven from synchronous code.

An asyncio loop runs in a background thread with a ``QMPClient``; commands
are submitted to it and waited for with a timeout. Every command, reply and
event is logged with a host timestamp, in the same clock as the console log,
so a verdict can say which host action came before which kernel message.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient
from qemu.qmp import QMPError as LibraryError

from orchestrator.machine.console import host_stamp


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, socket_path: Path, log_path: Path, name: str = "ktest") -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self._log = open(log_path, "a", buffering=1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ktest-qmp",
                                        daemon=True)
        self._thread.start()
        self._client = QMPClient(name)
        self._events: list[dict[str, Any]] = []
        self._event_cond = threading.Condition()
        self._listener_task: Any = None
        self.connected = False

    def _note(self, text: str) -> None:
        self._log.write(f"{host_stamp()} {text}\n")

    def _run(self, coro: Any, timeout: float) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise QMPError(f"QMP did not answer within {timeout:.0f}s") from None

    def connect(self, timeout: float = 20.0, alive: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            if alive is not None and not alive():
                raise QMPError("QEMU exited before its QMP socket appeared")
            if time.monotonic() > deadline:
                raise QMPError(f"no QMP socket at {self.socket_path} after {timeout:.0f}s")
            time.sleep(0.01)
        try:
            self._run(self._client.connect(str(self.socket_path)), timeout)
        except LibraryError as e:
            raise QMPError(str(e)) from None
        self.connected = True
        self._note(f"QMP connected: {self._client.greeting}")
        self._listener_task = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)

    async def _listen(self) -> None:
        listener = EventListener()
        with self._client.listen(listener):
            async for event in listener:
                data = dict(event)
                self._note(f"QMP event {json.dumps(data, default=str)}")
                with self._event_cond:
                    self._events.append(data)
                    self._event_cond.notify_all()

    def execute(self, command: str, args: dict[str, Any] | None = None,
                timeout: float = 30.0) -> Any:
        if not self.connected:
            raise QMPError(f"QMP not connected (command {command})")
        self._note(f"QMP> {command} {json.dumps(args or {})}")
        try:
            reply = self._run(self._client.execute(command, args), timeout)
        except QMPError:
            raise
        except Exception as e:  # the library's ExecuteError, EOF, disconnects
            self._note(f"QMP< error {type(e).__name__}: {e}")
            raise QMPError(f"QMP {command} failed: {e}") from e
        self._note(f"QMP< {json.dumps(reply, default=str)}")
        return reply

    def hmp(self, command_line: str, timeout: float = 30.0) -> str:
        return str(self.execute("human-monitor-command", {"command-line": command_line},
                                timeout))

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._event_cond:
            return [e for e in self._events if name is None or e.get("event") == name]

    def event_count(self) -> int:
        """How many events have arrived so far (an `after` for wait_event)."""
        with self._event_cond:
            return len(self._events)

    def wait_event(self, name: str, timeout: float, after: int = 0,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first event `name` among those after index `after` whose data
        holds every item of `data`; QMPError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._event_cond:
            while True:
                for e in self._events[after:]:
                    if e.get("event") == name and all(
                            e.get("data", {}).get(k) == v for k, v in (data or {}).items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QMPError(f"no QMP event {name} within {timeout:.0f}s")
                self._event_cond.wait(left)

    def close(self) -> None:
        if self._listener_task is not None:
            self._listener_task.cancel()  # stop the event reader before the loop goes
            self._listener_task = None
        if self.connected:
            self.connected = False
            try:
                self._run(self._client.disconnect(), 5)
            except Exception:  # QEMU already gone: EOF on disconnect is expected
                pass
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
        self._log.close()
