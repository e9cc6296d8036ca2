"""One exception type for every mistake a user can make (bad file, bad option, bad data).

The CLI turns a UserError into one line on stderr and a non-zero exit code, never a traceback.
"""


class UserError(Exception):
    """A problem with the user's input. The message names the file (and line) and what is wrong."""

    def __init__(self, message, path=None, line=None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.detail = message
        if self.path is not None and line is not None:
            message = f"{self.path}:{line}: {message}"
        elif self.path is not None:
            message = f"{self.path}: {message}"
        super().__init__(message)


class Interrupted(Exception):
    """Stopped by SIGINT/SIGTERM after saving what resumes the work; the CLI prints the message
    (which says how to resume) and exits 130, the shell's code for Ctrl-C."""
