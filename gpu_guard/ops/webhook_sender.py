"""Delivery of notifications to one target, on a thread of its own.

A target that is slow or down only delays its own queue: the guard's threads and ComfyUI's event
loop hand a notification over and return. A failed attempt (network error, timeout, non-2xx, or a
chat service's error code) is retried after `backoff_s`, 2x, 4x, ... (at most 60 s) up to `retries`
times; then the message is a dead letter (counted, logged without its URL). At most QUEUE_LIMIT
messages wait; the oldest beyond that becomes a dead letter.

Every error of an attempt is caught (a URL http.client refuses, a name that does not resolve, a
refused address, a bug in a builder): it is an attempt that failed like any other. What is kept of
it (`last_error`, in the unauthenticated status) and logged names the kind of failure only: never
the target's answer body, the URL's path or query (tokens live there), or a traceback. Redirects
are never followed: a 3xx is a failed attempt.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Callable, Optional

from . import webhook_formats
from .webhook_settings import public_url, resolve, resolved_problem
from ..waits import STOP_WAIT_S

log = logging.getLogger("gpu_guard.ops")

QUEUE_LIMIT = 100
MAX_BACKOFF_S = 60.0
USER_AGENT = "comfyui-gpu-guard-webhook/1"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx: an answer, never followed


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_post(url: str, body: bytes, headers: dict, timeout: float) -> tuple:
    """(status, body) of a POST; HTTP errors (and 3xx: redirects are not followed) are answers,
    network failures raise OSError."""
    request = urllib.request.Request(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as answer:  # noqa: S310 - http(s) checked at config
            return answer.status, answer.read(65536)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read(65536) if e.fp else b""


def describe_error(error: BaseException) -> str:
    """What failed, without the URL or anything a target sent: the kind of error and, for network
    errors, the operating system's reason."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        reason = error.reason
        return describe_error(reason) if isinstance(reason, BaseException) else "URLError"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__


class TargetSender:
    def __init__(self, target: dict, metrics, source: str, retries: Callable[[], int],
                 timeout_s: Callable[[], float], backoff_s: float = 1.0,
                 post: Callable = http_post, wall: Callable[[], float] = time.time,
                 allow_hosts: Callable[[], tuple] = tuple, address_check: Callable = resolved_problem):
        self.target = target
        self.name = target["name"]
        self._metrics, self._source = metrics, source
        self._retries, self._timeout_s, self._backoff_s = retries, timeout_s, backoff_s
        self._post, self._wall = post, wall
        self._allow_hosts, self._address_check = allow_hosts, address_check
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False  # a notification is being delivered (retries included)
        self.delivered = self.attempt_errors = self.dead_letters = 0
        self.last_error: Optional[str] = None
        self._thread = threading.Thread(target=self._run, name=f"gpu-guard-webhook-{self.name}", daemon=True)
        metrics.touch_target(self.name)
        self._thread.start()

    def wants(self, rule: str) -> bool:
        return rule in self.target.get("rules", (rule,))

    def submit(self, notification) -> None:
        """Queue one notification; never blocks."""
        with self._cond:
            if len(self._queue) >= QUEUE_LIMIT:
                self._queue.popleft()
                self._dead_letter("the queue is full (the target has been failing)")
            self._queue.append(notification)
            self._cond.notify()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                notification = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(notification)
            except Exception:  # noqa: BLE001 - the sender outlives any bug
                log.exception("VRAM guard webhook %s: delivery failed unexpectedly", self.name)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, notification) -> None:
        retries = self._retries()
        for attempt in range(retries + 1):
            try:
                problem = self._attempt(notification)
            except Exception as e:  # noqa: BLE001 - any failure is a failed attempt (InvalidURL included)
                problem = describe_error(e)
            if problem is None:
                self.delivered += 1
                self._metrics.delivered(self.name)
                return
            self.attempt_errors += 1
            self.last_error = problem
            if attempt == retries:
                break
            self._metrics.retried(self.name)
            if self._sleep(min(MAX_BACKOFF_S, self._backoff_s * 2 ** attempt)):
                return  # stopping
        self._dead_letter(f"{retries + 1} attempts failed, last: {self.last_error}")

    def _attempt(self, notification) -> Optional[str]:
        """One delivery attempt: None when the target accepted it, else what went wrong."""
        url, secret = resolve(self.target)
        refused = self._address_check(url, self._allow_hosts())
        if refused is not None:
            return refused
        request = webhook_formats.build(self.target["format"], url, secret, notification, self._source, self._wall())
        status, body = self._post(request.url, request.body, request.headers, self._timeout_s())
        return webhook_formats.answer_problem(self.target["format"], status, body)

    def _sleep(self, seconds: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._stopping, seconds)

    def _dead_letter(self, why: str) -> None:
        self.dead_letters += 1
        self._metrics.dead_letter(self.name)
        url, _ = resolve(self.target)
        log.warning("VRAM guard webhook %s (%s, %s): message dropped: %s", self.name, self.target["format"],
                    public_url(url) if url else "no URL", why)

    def view(self) -> dict:
        return {"name": self.name, "format": self.target["format"], "delivered": self.delivered,
                "failed_attempts": self.attempt_errors, "dead_letters": self.dead_letters,
                "queued": self.queued(), "last_error": self.last_error}
