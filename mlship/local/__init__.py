"""The local environment: real BentoML servers behind HAProxy, watched by Prometheus, on loopback."""
