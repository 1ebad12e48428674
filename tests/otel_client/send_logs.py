"""Sends log records to scrubs with the OpenTelemetry Python SDK's own
OTLP/HTTP exporter (BatchLogRecordProcessor, 10 s export timeout), as a
service's logging would, and prints what happened as one JSON line.

Usage: send_logs.py ENDPOINT TOTAL SECONDS

Every 10th record carries `audit=true` and a `patient_id` attribute (the
audit fork selects them). Each HTTP request's answer time and status, and
each export's result, are recorded: a request the SDK gave up on shows as
an error or a FAILURE result.
"""

import json
import logging
import sys
import time

import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint, total, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
calls = []
exports = []


class TimedSession(requests.Session):
    """Times every HTTP request the exporter makes (retries included)."""

    def request(self, method, url, *args, **kwargs):
        started = time.monotonic()
        try:
            r = super().request(method, url, *args, **kwargs)
        except Exception as e:  # the SDK's timeout, a refused connection
            calls.append({"error": type(e).__name__, "secs": time.monotonic() - started})
            raise
        calls.append({"status": r.status_code, "secs": time.monotonic() - started})
        return r


exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs", timeout=10, session=TimedSession())
inner_export = exporter.export


def timed_export(batch):
    started = time.monotonic()
    result = inner_export(batch)
    exports.append({"result": result.name, "records": len(batch), "secs": time.monotonic() - started})
    return result


exporter.export = timed_export
provider = LoggerProvider(resource=Resource.create({"service.name": "visit-api"}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=500))
log = logging.getLogger("visit-api")
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
log.setLevel(logging.INFO)
log.propagate = False

print("started", flush=True)
start = time.monotonic()
for i in range(total):
    delay = start + seconds * i / total - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    extra = {"n": i}
    if i % 10 == 0:
        extra.update({"audit": "true", "patient_id": f"p-{i % 7}"})
    log.info("order shipped i=%d", i, extra=extra)
provider.shutdown()
print(json.dumps({"calls": calls, "exports": exports}), flush=True)
