"""A dependency-free progress bar with rate and ETA (redraws in place on a terminal, prints a
line every few percent otherwise, so logs of non-interactive runs stay readable). Without a
total (a camera's frames) it counts: no bar, no ETA, a line every OPEN_ENDED_EVERY off a
terminal."""
import sys
import time

OPEN_ENDED_EVERY = 100


def format_seconds(s):
    s = int(max(s, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def images_rate_line(images, seconds):
    """The closing line of a command that ran a network over images: how many, how fast."""
    rate = images / seconds if seconds > 0 else 0.0
    return f"{images} image{'s' if images != 1 else ''} in {seconds:.2f} s ({rate:.2f} images/s)"


class Progress:
    def __init__(self, total, desc="", unit="it", stream=None, start=0, width=24, every=0.05):
        self.total = None if total is None else max(int(total), 1)
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.n = start
        self.start_n = start
        self.width = width
        self.t0 = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = OPEN_ENDED_EVERY if total is None else max(1, int(self.total * every))
        self.postfix = ""
        self._last_len = 0

    def update(self, n=1, postfix=None):
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if (self.tty or self.n % self.every == 0
                or (self.total is not None and self.n >= self.total)):
            self._draw()

    def line(self):
        elapsed = time.perf_counter() - self.t0
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            return (f"{self.desc} {self.n} {self.unit} {rate:.2f} {self.unit}/s "
                    f"{format_seconds(elapsed)} {self.postfix}").rstrip()
        eta = (self.total - self.n) / rate if rate > 0 else 0.0
        frac = min(self.n / self.total, 1.0)
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        return (f"{self.desc} {self.n}/{self.total} [{bar}] {100 * frac:5.1f}% "
                f"{rate:.2f} {self.unit}/s {format_seconds(elapsed)}<{format_seconds(eta)} "
                f"{self.postfix}").rstrip()

    def _draw(self):
        text = self.line()
        if self.tty:
            pad = max(self._last_len - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._last_len = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def write(self, message):
        """Print a message without garbling the bar."""
        if self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
