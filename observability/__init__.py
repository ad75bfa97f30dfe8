"""What operators see: Prometheus metrics (web and worker), request ids and JSON logs."""
