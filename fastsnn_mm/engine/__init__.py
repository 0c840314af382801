"""Training-time pieces: hooks and loops."""
from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
