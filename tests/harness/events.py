"""A websocket listener that collects ComfyUI's events by type, with a wait-for helper."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import websocket


PROMPT_END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


@dataclass
class Event:
    type: str
    data: Any
    at: float = field(default_factory=time.monotonic)


class EventTimeout(AssertionError):
    """The awaited event did not come; the message lists what did."""


class EventStream:
    """Listens on ComfyUI's `/ws` as one client id and keeps every JSON event.

    Binary frames (previews) are counted, not kept. Use as a context manager or call close().
    """

    def __init__(self, ws_url: str, client_id: str, connect_timeout: float = 10.0, cookie: str | None = None):
        self.client_id = client_id
        self.events: list[Event] = []
        self.binary_frames = 0
        self._changed = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        # cookie: what a browser sends on the upgrade (e.g. a load balancer's affinity cookie)
        self._ws = websocket.create_connection(f"{ws_url}?clientId={client_id}", timeout=connect_timeout,
                                               cookie=cookie)
        self._ws.settimeout(0.5)  # lets the reader notice close() promptly
        self._reader = threading.Thread(target=self._read, name=f"ws-{client_id[:8]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                opcode, payload = self._ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as error:  # noqa: BLE001 - closed socket or server gone: stop reading
                if not self._closed:
                    self._error = error
                break
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.binary_frames += 1
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            message = json.loads(payload.decode("utf-8"))
            with self._changed:
                self.events.append(Event(message.get("type", ""), message.get("data")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def of_type(self, event_type: str) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e.type == event_type]

    def types(self) -> list[str]:
        with self._changed:
            return [e.type for e in self.events]

    def mark(self) -> int:
        """A position in the stream; pass it as `since` to wait only for later events."""
        with self._changed:
            return len(self.events)

    def wait_for(self, event_type: str | Iterable[str], predicate: Callable[[Any], bool] | None = None,
                 timeout: float = 30.0, since: int = 0) -> Event:
        """The first event of `event_type` (a type or several) at or after position `since` whose
        data satisfies `predicate`; raises EventTimeout listing the event types seen."""
        wanted = {event_type} if isinstance(event_type, str) else set(event_type)
        deadline = time.monotonic() + timeout
        with self._changed:
            index = since
            while True:
                for event in self.events[index:]:
                    if event.type in wanted and (predicate is None or predicate(event.data)):
                        return event
                index = len(self.events)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._error is not None or self._closed:
                    break
                self._changed.wait(remaining)
            seen = sorted({e.type for e in self.events})
        reason = f" (socket error: {self._error!r})" if self._error else ""
        raise EventTimeout(f"no {sorted(wanted)} event matching within {timeout:.0f}s{reason}; "
                           f"event types seen: {seen}")

    def wait_for_prompt_end(self, prompt_id: str, timeout: float = 120.0, since: int = 0) -> Event:
        """The event that ends a prompt: execution_success, execution_error or execution_interrupted."""
        return self.wait_for(PROMPT_END_EVENTS, lambda data: (data or {}).get("prompt_id") == prompt_id,
                             timeout=timeout, since=since)

    def close(self) -> None:
        self._closed = True
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self._reader.join(timeout=5)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
