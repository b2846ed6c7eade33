"""Parses a /metrics scrape (stdin) with prometheus_client's parsers and prints its samples as
JSON: [{"family", "type", "name", "labels", "value"}]. Both parsers must accept the text: the
Prometheus text-format parser (`prometheus_client.parser`) and the stricter OpenMetrics one
(which checks `# EOF`, counter and histogram naming, label syntax, and knows that `x_total` is
counter `x`'s sample: the families and types printed are its); both must read the same samples.
Exit status 1 with the reason otherwise."""
import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families


def samples(families):
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), float(s.value))
        for f in families
        for s in f.samples
    )


text = sys.stdin.read()
try:
    om = list(openmetrics_families(text))
    prom = list(text_string_to_metric_families(text))
except Exception as e:  # the parsers raise ValueError (and others) for malformed text
    print(f"unparsable: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
if samples(om) != samples(prom):
    print("the two parsers read different samples:", file=sys.stderr)
    print(sorted(set(samples(om)) ^ set(samples(prom))), file=sys.stderr)
    sys.exit(1)
out = [
    {"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value}
    for f in om
    for s in f.samples
]
json.dump(out, sys.stdout)
