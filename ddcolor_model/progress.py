"""A progress bar: tqdm when installed, otherwise a plain line on stderr."""
import sys


def progress(items, description):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(items, description)
    return tqdm(items, desc=description, unit="image", file=sys.stderr)


class _PlainProgress:
    def __init__(self, items, description):
        self.items = list(items)
        self.description = description

    def __iter__(self):
        total = len(self.items)
        for done, item in enumerate(self.items):
            sys.stderr.write(f"\r{self.description}: {done}/{total}")
            sys.stderr.flush()
            yield item
        sys.stderr.write(f"\r{self.description}: {total}/{total}\n")
        sys.stderr.flush()

    def write(self, message, file=None):
        """Same signature as tqdm.write: a message line that does not break the progress line."""
        file = file or sys.stderr
        file.write("\n" + message + "\n")
