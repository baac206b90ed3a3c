"""Development tooling of traffic_anomalies: the sample-lake generator, the evaluation of the
detectors against injected anomalies, the benchmarks and the demo. Not needed to run the
pipeline: the runtime package is ``traffic_anomalies``."""
