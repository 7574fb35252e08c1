"""The local Docker Engine as a facts source (through the ``docker`` SDK), and the user's Docker credentials."""

from slimguard.docker_engine.credentials import docker_config_credentials
from slimguard.docker_engine.facts import DockerFacts, connect

__all__ = ["DockerFacts", "connect", "docker_config_credentials"]
