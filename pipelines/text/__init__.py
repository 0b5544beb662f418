"""Pure text functions the pipeline stages wrap: plain values in and out, no Beam, Kafka or I/O."""
