"""Task models: convertible backbones/necks and timestep-aware wrappers."""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .timestep_mixin import TimestepMixin  # noqa: F401
