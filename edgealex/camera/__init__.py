"""Frame sources (``open_source``) and sinks (``open_sink``) by URI; see ``source.py`` and ``sink.py``."""

from edgealex.camera.sink import FrameSink, open_sink  # noqa: F401
from edgealex.camera.source import EndOfStream, Frame, FrameSource, open_source, parse_uri  # noqa: F401
