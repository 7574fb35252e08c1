"""The Kubernetes adapter: reads pull secrets, writes annotations, Events and ImagePolicy status."""
