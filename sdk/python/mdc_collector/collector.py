"""A drop-in for ``azureml.ai.monitoring.Collector`` that sends to the open-source model data collector."""

import atexit
import collections
import datetime
import os
import re
import threading
import weakref

from . import _data
from ._config import deployment_url
from ._sender import post_with_retry
from .context import BasicCorrelationContext
from .errors import CollectorError

VERSION = "0.1.0"
AGENT = "mdc-collector-py/%s" % VERSION
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
_KEPT_ERRORS = 100
_live = weakref.WeakSet()


class Collector:
    """Collects model data for one collection (``model_inputs``, ``model_outputs``, or a custom one).

    ``collect()`` returns at once: a background thread batches calls into NDJSON requests, retries
    throttling and outages with backoff and jitter, and a bounded queue drops (and reports) data rather than
    slow the scoring path. Errors go to ``on_error``; without it they are raised from ``flush()``/``close()``,
    never from ``collect()``.
    """

    def __init__(
        self,
        name,
        on_error=None,
        *,
        url=None,
        key=None,
        endpoint=None,
        deployment=None,
        max_queue=10000,
        flush_interval=0.1,
        max_batch_calls=500,
        max_batch_bytes=512 * 1024,
        retries=6,
        base_delay=0.2,
        max_delay=10.0,
        timeout=30.0,
        model_version=None,
    ):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("collection name %r must match ^[a-zA-Z_][a-zA-Z0-9_]{0,63}$" % (name,))
        key = key or os.environ.get("MDC_KEY")
        if not key:
            raise ValueError("no ingest key: pass key= or set MDC_KEY")
        if max_queue < 1 or max_batch_calls < 1 or max_batch_bytes < 1:
            raise ValueError("max_queue, max_batch_calls and max_batch_bytes must be at least 1")
        self.name = name
        self.url = "%s/%s" % (deployment_url(url, endpoint, deployment), name)
        self._key = key
        self._on_error = on_error
        self._max_queue = max_queue
        self._flush_interval = flush_interval
        self._max_batch_calls = max_batch_calls
        self._max_batch_bytes = max_batch_bytes
        self._retry = (retries, base_delay, max_delay, timeout)
        self._model_version = model_version
        self._closed = False
        self._reset()
        _live.add(self)

    def _reset(self):
        # Also after a fork: the parent's lock and thread do not exist in the child.
        self._pid = os.getpid()
        self._cv = threading.Condition()
        self._queue = collections.deque()
        self._sending = False
        self._flush_requested = False
        self._stop = threading.Event()
        self._thread = None
        self._errors = []
        self._error_count = 0
        self._dropped = 0

    @property
    def pending(self):
        """Collect calls queued or being sent."""
        with self._cv:
            return len(self._queue)

    def collect(self, data, correlation_context=None, *, context=None):
        """Queues ``data`` (a DataFrame, a list of dicts or a dict of lists) and returns the correlation
        context to pass to the outputs' ``collect``."""
        correlation = correlation_context or context or BasicCorrelationContext()
        try:
            if self._pid != os.getpid():
                self._reset()
            if self._closed:
                self._fail(CollectorError("Closed", "collector %r is closed" % self.name, dropped=1))
                return correlation
            with self._cv:
                full = len(self._queue) >= self._max_queue
            if full:
                self._fail(
                    CollectorError(
                        "QueueFull", "collector %r queue is full (%d calls): data dropped" % (self.name, self._max_queue), dropped=1
                    )
                )
                return correlation
            correlation_id = correlation.get_id()
            if not isinstance(correlation_id, str) or not 0 < len(correlation_id) <= 256 or any(ord(ch) < 32 for ch in correlation_id):
                self._fail(CollectorError("InvalidData", "the correlation id must be 1-256 characters without control characters", dropped=1))
                return correlation
            try:
                rows, data_type = _data.normalize(data)
                line = _data.dumps(self._envelope(rows, data_type, correlation)).encode("utf-8")
            except (ValueError, TypeError, RecursionError) as error:
                self._fail(CollectorError("InvalidData", str(error), dropped=1))
                return correlation
            with self._cv:
                self._queue.append(line)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="mdc-collector-%s" % self.name, daemon=True)
                    self._thread.start()
                self._cv.notify_all()
        except Exception as error:  # the scoring path must never see the collector fail
            self._fail(CollectorError("InvalidData", "collect failed: %r" % (error,), dropped=1))
        return correlation

    def flush(self, timeout=None):
        """Waits until everything queued is delivered or given up; returns False if ``timeout`` (seconds)
        ran out first. Without ``on_error``, raises a ``CollectorError`` summing the losses since the last
        flush."""
        with self._cv:
            self._flush_requested = True
            self._cv.notify_all()
            done = self._cv.wait_for(lambda: not self._queue and not self._sending, timeout)
        self._raise_pending()
        return done

    def close(self, timeout=None):
        """Flushes, then stops the thread and refuses further data. After ``timeout`` seconds, gives up on
        what is left (reported as ``SendFailed``)."""
        self._closed = True
        try:
            if not self.flush(timeout):
                self._stop.set()
                self.flush()
        finally:
            self._stop.set()
            with self._cv:
                self._cv.notify_all()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout)

    def _envelope(self, rows, data_type, context):
        envelope = {
            "data": rows,
            "correlationid": context.get_id(),
            "collectdatatype": data_type,
            "agent": AGENT,
            # The call's own time: a batch may leave later, and the line must say when the model saw the data.
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        headers = {k.lower(): v for k, v in (context.get_headers() or {}).items()}
        if headers.get("x-request-id"):
            envelope["xrequestid"] = headers["x-request-id"]
        if self._model_version:
            envelope["modelversion"] = self._model_version
        return envelope

    def _run(self):
        retries, base_delay, max_delay, timeout = self._retry
        while True:
            with self._cv:
                while not self._queue and not self._stop.is_set():
                    self._cv.wait()
                if not self._queue:
                    return
                # Let a few more calls join this request.
                self._cv.wait_for(
                    lambda: self._flush_requested or self._stop.is_set() or len(self._queue) >= self._max_batch_calls,
                    self._flush_interval,
                )
                batch, size = [], 0
                for line in self._queue:
                    if len(batch) >= self._max_batch_calls or (batch and size + len(line) + 1 > self._max_batch_bytes):
                        break
                    batch.append(line)
                    size += len(line) + 1
                self._sending = True
            try:
                if self._stop.is_set():
                    raise CollectorError("SendFailed", "collector closed before %d event(s) were sent" % len(batch), dropped=len(batch))
                post_with_retry(
                    self.url,
                    b"\n".join(batch) + b"\n",
                    {"Content-Type": "application/x-ndjson", "x-mdc-key": self._key, "User-Agent": AGENT},
                    len(batch),
                    retries,
                    base_delay,
                    max_delay,
                    timeout,
                    self._stop,
                )
            except CollectorError as error:
                self._fail(error)
            except Exception as error:
                self._fail(CollectorError("SendFailed", repr(error), dropped=len(batch)))
            with self._cv:
                for _ in batch:
                    self._queue.popleft()
                self._sending = False
                if not self._queue:
                    self._flush_requested = False
                self._cv.notify_all()

    def _fail(self, error):
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                pass  # a failing handler must not reach the scoring path
            return
        with self._cv:
            self._error_count += 1
            self._dropped += error.dropped
            if len(self._errors) < _KEPT_ERRORS:
                self._errors.append(error)

    def _raise_pending(self):
        with self._cv:
            if not self._error_count:
                return
            first, count, dropped, errors = self._errors[0], self._error_count, self._dropped, self._errors
            self._errors, self._error_count, self._dropped = [], 0, 0
        raise CollectorError(
            first.code,
            "%d error(s), %d collect call(s) lost since the last flush; first: %s" % (count, dropped, first.message),
            dropped=dropped,
            status=first.status,
            errors=errors,
        )


@atexit.register
def _flush_at_exit():
    # Short scripts end right after their last collect: give the thread a moment to deliver it.
    for collector in list(_live):
        try:
            if not collector._closed:
                collector.flush(timeout=5.0)
        except Exception:
            pass
