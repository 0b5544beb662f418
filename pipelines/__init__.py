"""The Beam pipeline: Kafka I/O, one composite PTransform per stage, and the pure text functions they wrap."""
