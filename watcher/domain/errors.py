"""Errors a user can cause or fix; the CLI prints them as one line, never a traceback."""


class UserError(Exception):
    """A mistake or a refusal the user can act on. `exit_code` follows the CLI contract:
    2 for bad input (arguments, configuration), 1 for an operation that was refused or
    could not be carried out."""

    exit_code = 1


class InvalidInput(UserError):
    """An argument, setting or file that does not parse. Nothing was changed."""

    exit_code = 2


class ConfigError(InvalidInput):
    """A setting that is missing or invalid; the message names the setting."""


class ChainError(UserError):
    """The chain could not be reached or refused a request."""


class InsufficientFunds(UserError):
    """A payment or transfer the sender cannot afford; nothing was sent."""
