"""Everything that touches the outside world: Kafka, sources that feed it, sinks that drain it."""
