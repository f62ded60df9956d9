"""The command line's settings and AWS client options, from the shell and the local stack."""

from __future__ import annotations

from dataclasses import dataclass

from cachesync.exceptions import ConfigurationError
from cachesync.local.env_file import CliEnvironment, cli_environment
from cachesync.runtime import ClientOptions
from cachesync.settings import CliSettings, load_settings

_SERVICES = ("dynamodb", "s3")


@dataclass(frozen=True)
class CliConfiguration:
    """Validated settings, and per service the client arguments the local stack supplies."""

    settings: CliSettings
    client_options: ClientOptions
    environment: CliEnvironment


def load_configuration() -> CliConfiguration:
    """The settings of this command, or a :class:`ConfigurationError` naming what is missing."""
    environment = cli_environment()
    try:
        settings = load_settings(CliSettings, environment.values)
    except ConfigurationError as error:
        if error.reason != "required but not set" or environment.file is not None:
            raise
        raise ConfigurationError(
            error.variable,
            "required but not set, and no local stack runs for this folder "
            "(start one with `make run` in the checkout, or export the CACHESYNC_* variables)",
        ) from error
    options = {service: environment.client_options(service) for service in _SERVICES}
    return CliConfiguration(settings=settings, client_options=options, environment=environment)
