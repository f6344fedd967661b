"""The one exception type a user should ever see from the engine.

A ``DataEngineError`` carries a single line that names the problem and the fix; the CLI prints it without a
traceback and exits with status 2. Anything else escaping is a bug.
"""


class DataEngineError(Exception):
    """A user-facing error: bad input, a missing file, a conflicting output. The message is one line."""
