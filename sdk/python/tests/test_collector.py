import math
import os
import unittest
from unittest import mock

from mdc_collector import BasicCorrelationContext, Collector, CollectorError
from mdc_collector._config import deployment_url

from .fake_pandas import DataFrame
from .recorder import Recorder

FAST = dict(retries=1000, base_delay=0.005, max_delay=0.05)


class CollectorTest(unittest.TestCase):
    def setUp(self):
        self.server = Recorder().start()
        self.collectors = []

    def tearDown(self):
        for c in self.collectors:
            try:
                c.close(timeout=5)
            except CollectorError:
                pass
        self.server.stop()

    def collector(self, name="model_inputs", **options):
        settings = dict(url=self.server.base_url + "/api/collect/ep/blue", key="ingest-key", **FAST)
        settings.update(options)
        c = Collector(name=name, **settings)
        self.collectors.append(c)
        return c

    def test_dataframe_inputs_and_outputs_share_one_correlation_id(self):
        inputs = self.collector(flush_interval=60)
        outputs = self.collector("model_outputs", flush_interval=60)
        frame = DataFrame({"LIMIT_BAL": [502970, 20000], "AGE": [54, float("nan")]})

        context = inputs.collect(frame)
        outputs.collect([{"score": 0.1}, {"score": 0.9}], context)
        inputs.flush()
        outputs.flush()

        (line,) = self.server.lines("/api/collect/ep/blue/model_inputs")
        self.assertEqual(line["data"], [{"LIMIT_BAL": 502970, "AGE": 54}, {"LIMIT_BAL": 20000, "AGE": None}])
        self.assertEqual(line["collectdatatype"], "tests.fake_pandas.DataFrame")
        self.assertRegex(line["time"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
        (out,) = self.server.lines("/model_outputs")
        self.assertEqual(out["correlationid"], context.get_id())
        self.assertEqual(line["correlationid"], context.get_id())
        path, headers, _ = self.server.requests[0]
        self.assertEqual(headers["x-mdc-key"], "ingest-key")
        self.assertEqual(headers["Content-Type"], "application/x-ndjson")

    def test_several_calls_share_one_request(self):
        inputs = self.collector(flush_interval=60)
        contexts = [inputs.collect([{"i": i}]) for i in range(5)]
        inputs.collect({"a": [1, 2], "b": ["x", "y"]}, context=BasicCorrelationContext(id="given"))
        inputs.flush()
        self.assertEqual(len(self.server.requests), 1)
        lines = self.server.lines()
        self.assertEqual([l["correlationid"] for l in lines], [c.get_id() for c in contexts] + ["given"])
        self.assertEqual(lines[-1]["data"], {"a": [1, 2], "b": ["x", "y"]})
        self.assertEqual(lines[-1]["collectdatatype"], "builtins.dict")

    def test_503_and_dropped_connections_are_retried(self):
        self.server.script += [("status", 503, {"Retry-After": "0"}), ("close",), ("status", 502, {})]
        errors = []
        inputs = self.collector(on_error=errors.append)
        inputs.collect([{"a": 1}])
        self.assertTrue(inputs.flush(timeout=20))
        self.assertEqual(errors, [])
        self.assertEqual(len(self.server.requests), 3)  # 503, 502, 202; the dropped one is not recorded
        self.assertEqual(self.server.requests[-1][2].count(b"\n"), 1)

    def test_refused_batch_is_reported_once(self):
        self.server.fallback = ("status", 403, {})
        errors = []
        inputs = self.collector(on_error=errors.append)
        inputs.collect([{"a": 1}])
        inputs.flush()
        self.assertEqual([(e.code, e.status, e.dropped) for e in errors], [("Rejected", 403, 1)])
        self.assertEqual(len(self.server.requests), 1)

    def test_without_on_error_collect_never_raises_and_flush_raises_once(self):
        self.server.fallback = ("status", 401, {})
        inputs = self.collector(max_queue=2, flush_interval=60)
        for i in range(4):
            inputs.collect([{"i": i}])
        inputs.collect("not data")
        inputs.collect([{"x": object()}])  # serialized with str(): a value, not an error
        with self.assertRaises(CollectorError) as raised:
            inputs.flush()
        self.assertEqual(raised.exception.code, "QueueFull")
        self.assertEqual([e.code for e in raised.exception.errors], ["QueueFull", "QueueFull", "QueueFull", "QueueFull", "Rejected"])
        self.assertEqual(raised.exception.dropped, 6)
        self.assertTrue(inputs.flush())

    def test_invalid_data_is_reported(self):
        errors = []
        inputs = self.collector(on_error=errors.append)
        context = inputs.collect({"a": [1, 2], "b": [3]})
        inputs.collect(42)
        inputs.collect([])
        inputs.collect(DataFrame({"a": []}))
        self.assertTrue(context.get_id())
        self.assertEqual([e.code for e in errors], ["InvalidData"] * 4)
        self.assertIn("no rows", str(errors[2]))
        self.assertIn("no rows", str(errors[3]))
        self.assertIn("column 'b' has 1 values, the others 2", str(errors[0]))
        self.assertIn("cannot collect builtins.int", str(errors[1]))

    def test_bounded_queue_with_the_collector_stopped_then_recovers(self):
        self.server.stop()
        errors = []
        inputs = self.collector(max_queue=100, on_error=errors.append, flush_interval=0)
        contexts = [inputs.collect([{"i": i}]) for i in range(10000)]
        self.assertEqual(len(contexts), 10000)
        self.assertEqual(len(errors), 9900)
        self.assertTrue(all(e.code == "QueueFull" for e in errors))
        self.assertEqual(inputs.pending, 100)

        self.server.start()  # same port
        self.assertTrue(inputs.flush(timeout=30))
        inputs.collect([{"i": "after"}])
        self.assertTrue(inputs.flush(timeout=30))
        self.assertEqual([l["data"][0]["i"] for l in self.server.lines()], list(range(100)) + ["after"])
        self.assertEqual(len(errors), 9900)

    def test_close_gives_up_after_its_timeout_and_refuses_more(self):
        self.server.stop()
        errors = []
        inputs = self.collector(on_error=errors.append)
        inputs.collect([{"a": 1}])
        inputs.close(timeout=0.2)
        inputs.collect([{"a": 2}])
        self.assertEqual([e.code for e in errors], ["SendFailed", "Closed"])

    def test_settings_come_from_the_environment(self):
        env = {"MDC_URL": self.server.base_url, "MDC_KEY": "k2", "MDC_ENDPOINT": "ep", "MDC_DEPLOYMENT": "green"}
        with mock.patch.dict(os.environ, env):
            c = Collector(name="model_inputs")
            self.collectors.append(c)
        self.assertEqual(c.url, self.server.base_url + "/api/collect/ep/green/model_inputs")
        c.collect([{"a": 1}])
        c.flush()
        self.assertEqual(self.server.requests[0][1]["x-mdc-key"], "k2")
        with self.assertRaisesRegex(ValueError, "MDC_ENDPOINT"):
            deployment_url("http://127.0.0.1:7071", env={})
        with self.assertRaisesRegex(ValueError, "MDC_URL"):
            deployment_url(env={})
        with self.assertRaisesRegex(ValueError, "collection name"):
            Collector(name="bad-name", url="http://h/api/collect/a/b", key="k")

    def test_numpy_like_values_become_json(self):
        class Scalar:
            def __init__(self, v):
                self.v = v

            def item(self):
                return self.v

        inputs = self.collector(flush_interval=60)
        inputs.collect([{"f": Scalar(1.5), "inf": math.inf, "b": b"\x00\x01"}])
        inputs.flush()
        self.assertEqual(self.server.lines()[0]["data"], [{"f": 1.5, "inf": None, "b": "AAE="}])


if __name__ == "__main__":
    unittest.main()
