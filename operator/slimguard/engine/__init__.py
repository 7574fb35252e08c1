"""The engine shared by the controller and the webhook: the cluster as watches show it, and facts gathering."""
