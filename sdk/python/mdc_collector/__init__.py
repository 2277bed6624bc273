"""mdc_collector: a stdlib-only drop-in for ``azureml.ai.monitoring`` that sends to the model data collector.

Switch a score.py by changing one line::

    from azureml.ai.monitoring import Collector   # before
    from mdc_collector import Collector           # after

Settings come from the environment: MDC_URL, MDC_KEY, MDC_ENDPOINT, MDC_DEPLOYMENT.
"""

from .collector import AGENT, VERSION, Collector
from .context import BasicCorrelationContext, CorrelationContext
from .errors import CollectorError

__all__ = ["Collector", "BasicCorrelationContext", "CorrelationContext", "CollectorError", "VERSION", "AGENT"]
__version__ = VERSION
