"""The one exception type for user mistakes: the CLIs print its message as one line and exit 1."""


class SACError(Exception):
    """A problem with the user's input (config, environment, checkpoint, device)."""
