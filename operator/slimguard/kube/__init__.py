"""The Kubernetes adapter: reads pull secrets, writes the status label and annotations, Events
and ImagePolicy status."""
