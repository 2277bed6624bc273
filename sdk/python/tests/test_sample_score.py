import importlib.util
import json
import os
import pathlib
import sys
import unittest
from unittest import mock

from . import fake_pandas
from .recorder import Recorder

SCORE = pathlib.Path(__file__).resolve().parent.parent / "samples" / "score.py"


def load_score():
    # The AML sample imports pandas; the stand-in is enough for it and for the collector.
    sys.modules.setdefault("pandas", fake_pandas)
    spec = importlib.util.spec_from_file_location("score", SCORE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SampleScoreTest(unittest.TestCase):
    def setUp(self):
        self.server = Recorder().start()

    def tearDown(self):
        self.server.stop()

    def test_aml_style_score_py_logs_inputs_and_outputs(self):
        env = {"MDC_URL": self.server.base_url, "MDC_KEY": "k", "MDC_ENDPOINT": "credit", "MDC_DEPLOYMENT": "blue"}
        with mock.patch.dict(os.environ, env):
            score = load_score()
            score.init()
        answer = score.run(json.dumps({"data": {"LIMIT_BAL": [20000, 120000], "AGE": [24, 26]}}))
        self.assertEqual(answer, {"default_probability": {0: 0.24, 1: 0.26}})
        score.inputs_collector.close(timeout=10)
        score.outputs_collector.close(timeout=10)

        (inputs,) = self.server.lines("/api/collect/credit/blue/model_inputs")
        (outputs,) = self.server.lines("/api/collect/credit/blue/model_outputs")
        self.assertEqual(inputs["data"], [{"LIMIT_BAL": 20000, "AGE": 24}, {"LIMIT_BAL": 120000, "AGE": 26}])
        self.assertEqual(outputs["data"], [{"default_probability": 0.24}, {"default_probability": 0.26}])
        self.assertEqual(inputs["correlationid"], outputs["correlationid"])

    def test_only_the_import_line_differs_from_the_azure_ml_sample(self):
        lines = SCORE.read_text().splitlines()
        imports = [l for l in lines if l.startswith(("from ", "import ")) and "Collector" in l]
        self.assertEqual(imports, ["from mdc_collector import Collector  # was: from azureml.ai.monitoring import Collector"])


if __name__ == "__main__":
    unittest.main()
