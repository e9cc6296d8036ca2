"""One exception type for every mistake a user can make (bad file, bad option, bad data), and
how a long command stops on SIGINT / SIGTERM.

The CLI turns a UserError into one line on stderr and a non-zero exit code, never a traceback.
"""
import contextlib
import signal
import threading
import unicodedata

# control characters and the Unicode line and paragraph separators: in a file name they would
# break a message's line, or forge one
_UNPRINTABLE = ("Cc", "Zl", "Zp")


def shown_path(path):
    """`path` as every message prints it: as it is, or quoted with its control characters
    escaped ('a\\nb.jpg') when it has any, so that a file name cannot break a message's line
    or forge another."""
    text = str(path)
    if any(unicodedata.category(c) in _UNPRINTABLE for c in text):
        return repr(text)
    return text


class UserError(Exception):
    """A problem with the user's input. The message names the file (and line) and what is wrong."""

    def __init__(self, message, path=None, line=None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.detail = message
        if self.path is not None and line is not None:
            message = f"{shown_path(self.path)}:{line}: {message}"
        elif self.path is not None:
            message = f"{shown_path(self.path)}: {message}"
        super().__init__(message)


class Interrupted(Exception):
    """Stopped by SIGINT/SIGTERM after saving what resumes the work; the CLI prints the message
    (which says how to resume) and exits with `exit_code`: 128 + the signal's number when one
    is given (the shell's code for a process that signal ended: 130 Ctrl-C, 143 SIGTERM),
    else 130."""

    def __init__(self, message, signum=None):
        super().__init__(message)
        self.exit_code = 128 + int(signum) if signum is not None else 130


@contextlib.contextmanager
def stop_requests():
    """While active, SIGINT and SIGTERM only append to the yielded list, which a long loop
    checks between steps. A KeyboardInterrupt raised wherever the signal lands can be
    swallowed (inside a weakref callback it is only printed as "Exception ignored"); a flag
    cannot. A second signal raises KeyboardInterrupt: the user insists on stopping at once."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received           # only the main thread may install handlers
        return

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            if old is not None:  # None: installed from C, cannot be put back from Python
                signal.signal(sig, old)
