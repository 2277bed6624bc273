"""Correlation contexts, as in ``azureml.ai.monitoring.context``."""

import uuid


class CorrelationContext:
    """What ties the inputs of one scoring call to its outputs."""

    def get_id(self):
        raise NotImplementedError

    def get_headers(self):
        return {}


class BasicCorrelationContext(CorrelationContext):
    """A correlation id (a new UUID when none is given) and optional headers.

    Pass the context returned by the inputs' ``collect`` to the outputs' ``collect`` so both lines carry
    the same ``correlationid``.
    """

    def __init__(self, id=None, headers=None):
        self.id = str(id) if id not in (None, "") else str(uuid.uuid4())
        self.headers = dict(headers or {})

    def get_id(self):
        return self.id

    def get_headers(self):
        return self.headers

    def __repr__(self):
        return "BasicCorrelationContext(id=%r)" % self.id
