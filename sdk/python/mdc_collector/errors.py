"""The one exception type the collector reports, with a ``code`` naming what went wrong."""


class CollectorError(Exception):
    """A loss of collected data.

    ``code`` is one of ``QueueFull`` (the bounded queue was full, the call was dropped so scoring is never
    slowed), ``SendFailed`` (the collector stayed unreachable or kept answering 503/5xx), ``Rejected`` (the
    collector refused the data: 400, 401, 403, 404, 413, 415...), ``InvalidData`` (neither a DataFrame, nor
    records, nor columns, or not serializable), ``Closed`` (collect after close). ``dropped`` counts the
    collect calls lost; ``status`` is the collector's HTTP status when it answered.
    """

    def __init__(self, code, message, dropped=0, status=None, errors=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.dropped = dropped
        self.status = status
        self.errors = list(errors or [])

    def __str__(self):
        return "%s: %s" % (self.code, self.message)
