"""Source connectors: push Fragment records INTO the raw Kafka topic."""
