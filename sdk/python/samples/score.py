"""An Azure ML scoring script (init()/run()) that logs its inputs and outputs.

It is Azure ML's custom-logging sample with one line changed: the Collector import. Run it anywhere with
MDC_URL, MDC_KEY, MDC_ENDPOINT and MDC_DEPLOYMENT set.
"""

import json
import logging

import pandas as pd

from mdc_collector import Collector  # was: from azureml.ai.monitoring import Collector


def init():
    global inputs_collector, outputs_collector

    # instantiate collectors with names that match the deployment's data_collector collections
    inputs_collector = Collector(name="model_inputs", on_error=lambda e: logging.info("ex:{}".format(e)))
    outputs_collector = Collector(name="model_outputs", on_error=lambda e: logging.info("ex:{}".format(e)))


def run(data):
    # json data: {"data": {"LIMIT_BAL": [20000, 120000], "AGE": [24, 26]}}
    input_df = pd.DataFrame(json.loads(data)["data"])

    # collect inputs data, keep the correlation context
    context = inputs_collector.collect(input_df)

    output_df = predict(input_df)

    # collect outputs data with the same context, so inputs and outputs can be joined later
    outputs_collector.collect(output_df, context)

    return output_df.to_dict()


def predict(input_df):
    # stands in for model.predict: a made-up default probability
    rows = input_df.to_dict(orient="records")
    return pd.DataFrame({"default_probability": [round(min(1.0, row["AGE"] / 100.0), 3) for row in rows]})
