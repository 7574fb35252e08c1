"""The registry adapter: reads manifests, configs and layer trailers over the OCI distribution API."""
