"""``python -m litehouse`` prints the version; ``python -m litehouse.bench`` benchmarks."""

from . import __version__

print(f"litehouse {__version__}")
