"""POSTs to the collect API with retries: backoff with full jitter, honouring Retry-After."""

import email.utils
import json
import random
import socket
import time
import urllib.error
import urllib.request

from .errors import CollectorError

RETRYABLE = {408, 429, 500, 502, 503, 504}


def _retry_after(headers):
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _describe(status, body):
    try:
        error = json.loads(body.decode("utf-8")).get("error") or {}
        if error.get("message"):
            return "%s %s: %s" % (status, error.get("code", ""), error["message"])
    except (ValueError, AttributeError):
        pass
    return ("%s %s" % (status, body[:200].decode("utf-8", "replace"))).strip()


def backoff(attempt, base_delay, max_delay, retry_after=None):
    if retry_after is not None:
        return min(max_delay, retry_after + random.random() * base_delay)
    return random.random() * min(max_delay, base_delay * (2 ** attempt))


def post_with_retry(url, body, headers, events, retries, base_delay, max_delay, timeout, stop):
    """Returns the 2xx answer body, or raises ``CollectorError`` counting ``events`` as dropped.

    ``stop`` is a ``threading.Event``: when set, waiting between attempts ends and the batch is given up.
    """
    attempt = 0
    while True:
        status, answer_headers, reason = None, None, None
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            status, answer_headers = error.code, error.headers
            reason = _describe(status, error.read())
            if status not in RETRYABLE:
                raise CollectorError(
                    "Rejected", "the collector refused %d event(s): %s" % (events, reason), dropped=events, status=status
                )
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError) as error:
            reason = str(getattr(error, "reason", error))
        if attempt >= retries or stop.is_set():
            raise CollectorError(
                "SendFailed",
                "gave up sending %d event(s) after %d attempt(s): %s" % (events, attempt + 1, reason),
                dropped=events,
                status=status,
            )
        if stop.wait(backoff(attempt, base_delay, max_delay, _retry_after(answer_headers))):
            raise CollectorError("SendFailed", "stopped sending %d event(s): %s" % (events, reason), dropped=events)
        attempt += 1
