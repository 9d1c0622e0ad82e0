"""``synthetic://``: a procedural conveyor belt carrying surface parts with and without defects.

Every frame shows one part filling the centre of a dark belt (so the model's centre crop sees the
part), rendered by :func:`edgealex.synth.render.render_sample` (numpy + OpenCV only, device
side) in a random flip/rotation. The label of the
part is the frame's ground truth, so a synthetic run reports accuracy. By default every frame is
rendered afresh (a new part, surface and defect each time: ~4 ms for a 1280x720 frame measured on
a 2-vCPU AMD EPYC, well inside a 30 fps period), so an accuracy figure counts as many distinct
images as frames. ``pool=N`` instead renders N frames per label once and draws from them (cheaper,
but the loop then judges at most 5N distinct images); pooled frames are shared and read-only
(``image.flags.writeable`` is False).

Options (query string or keyword)::

    width=1280 height=720   frame size (default 1280x720)
    fps=30                  frames per second, paced like a camera (live: the loop may drop frames);
                            fps=0 delivers frames as fast as they are consumed (nothing dropped)
    defect_rate=0.3         fraction of parts with a defect (default 0.3)
    seed=0                  randomness seed (same seed, same sequence)
    count=N                 end of stream after N frames (default: endless)
    pool=0                  0 renders a fresh frame every time (the default); N draws from N
                            pre-rendered frames per label
    part_size=256           side at which parts are rendered before scaling to the frame
    loop=1                  with count: restart the same sequence at the end
"""

import numpy as np

from edgealex._optional import require
from edgealex.camera.source import EndOfStream, FrameSource, _option, _reject_extra
from edgealex.errors import EdgeAlexError

DEFAULT_WIDTH = 1280
DEFAULT_HEIGHT = 720
DEFAULT_FPS = 30.0
DEFAULT_DEFECT_RATE = 0.3
DEFAULT_POOL = 0
DEFAULT_PART_SIZE = 256
OPTIONS = ("defect_rate", "seed", "count", "pool", "part_size")


class SyntheticSource(FrameSource):
    """Procedural conveyor frames with ground truth. See the module docstring for the options.

    Args:
        uri (str): the URI, for records. Defaults to "synthetic://".
        width (int): frame width. Defaults to 1280.
        height (int): frame height. Defaults to 720.
        fps (float): pacing; 0 = unpaced. Defaults to 30.
        loop (bool): restart after ``count`` frames. Defaults to False.
        defect_rate (float): fraction of defective parts, 0..1. Defaults to 0.3.
        seed (int): randomness seed. Defaults to 0.
        count (int): frames before end of stream; None = endless. Defaults to None.
        pool (int): pooled frames per label; 0 = render every frame. Defaults to 0.
        part_size (int): render size of a part (>= 32). Defaults to 256.
    """

    kind = "synthetic"
    resize_output = False  # frames are rendered at the requested size

    def __init__(self, uri="synthetic://", width=None, height=None, fps=None, loop=False,
                 defect_rate=DEFAULT_DEFECT_RATE, seed=0, count=None, pool=DEFAULT_POOL,
                 part_size=DEFAULT_PART_SIZE):
        super().__init__(uri, width or DEFAULT_WIDTH, height or DEFAULT_HEIGHT,
                         DEFAULT_FPS if fps is None else fps, loop)
        self.live = self.fps > 0  # paced like a camera: a slow consumer loses frames
        if not 0.0 <= float(defect_rate) <= 1.0:
            raise EdgeAlexError(uri, f"defect_rate must be in [0, 1], got {defect_rate}", "e.g. defect_rate=0.3")
        if self.width < 32 or self.height < 32:
            raise EdgeAlexError(uri, f"frame size {self.width}x{self.height} is too small", "use at least 32x32")
        if count is not None and int(count) < 0:
            raise EdgeAlexError(uri, f"count must be >= 0, got {count}", "omit count for an endless stream")
        if int(pool) < 0 or int(part_size) < 32:
            raise EdgeAlexError(uri, "pool must be >= 0 and part_size >= 32", "e.g. pool=0&part_size=256")
        self.defect_rate = float(defect_rate)
        self.seed = int(seed)
        self.count = None if count is None else int(count)
        self.pool = int(pool)
        self.part_size = int(part_size)
        self._labels = None
        self._defects = None
        self._cache = {}
        self._belt = None
        self._rng = None
        self._emitted = 0

    @classmethod
    def from_options(cls, uri, common, extra):
        _reject_extra(uri, extra, OPTIONS)
        return cls(uri=uri, width=common["width"], height=common["height"], fps=common["fps"], loop=common["loop"],
                   defect_rate=_option(extra, "defect_rate", float, DEFAULT_DEFECT_RATE, uri),
                   seed=_option(extra, "seed", int, 0, uri),
                   count=_option(extra, "count", int, None, uri),
                   pool=_option(extra, "pool", int, DEFAULT_POOL, uri),
                   part_size=_option(extra, "part_size", int, DEFAULT_PART_SIZE, uri))

    @property
    def labels(self):
        """The labels a part can carry (``edgealex.synth.render.LABELS``)."""
        from edgealex.synth.render import LABELS

        return list(LABELS)

    def open_impl(self):
        from edgealex.synth.render import DEFECT_LABELS, LABELS

        self._labels = list(LABELS)
        self._defects = list(DEFECT_LABELS)
        self._good = [label for label in LABELS if label not in DEFECT_LABELS]
        self._rng = np.random.default_rng(self.seed)
        self._emitted = 0
        self._belt = self._render_belt()

    def close_impl(self):
        self._cache.clear()
        self._belt = None

    def _render_belt(self):
        """A dark rubber belt with faint cross ribs (cheap; drawn once)."""
        h, w = self.height, self.width
        rows = np.arange(h, dtype=np.float32)[:, None]
        ribs = 8.0 * (np.sin(rows * (2 * np.pi / max(h / 24.0, 4.0))) > 0.6)
        grey = (38.0 + ribs + np.zeros((1, w), np.float32)).astype(np.uint8)
        belt = np.repeat(grey[:, :, None], 3, axis=2)
        edge = max(2, h // 60)
        belt[:edge] = belt[-edge:] = 90  # belt edges
        return belt

    def _render_frame(self, label, rng):
        """One conveyor frame: the part, in one of the 8 flips/rotations, on the belt."""
        from edgealex.synth.render import render_sample

        cv2 = require("cv2", "synthetic frames")
        part = render_sample(rng, label, size=self.part_size)
        turn = int(rng.integers(8))
        if turn & 4:
            part = part[:, ::-1]
        part = np.ascontiguousarray(np.rot90(part, turn & 3))
        side = min(self.height, self.width)
        frame = self._belt.copy()
        y0, x0 = (self.height - side) // 2, (self.width - side) // 2
        frame[y0:y0 + side, x0:x0 + side] = cv2.resize(part, (side, side), interpolation=cv2.INTER_LINEAR)
        frame.flags.writeable = False  # pooled frames are shared: consumers must copy to draw
        return frame

    def read_impl(self, timeout_ms):
        if self.count is not None and self._emitted >= self.count:
            if not self.loop or self.count == 0:
                raise EndOfStream()
            self._rng = np.random.default_rng(self.seed)
            self._emitted = 0
        rng = self._rng
        if rng.random() < self.defect_rate and self._defects:
            label = self._defects[int(rng.integers(len(self._defects)))]
        else:
            label = self._good[0] if self._good else self._labels[0]
        if self.pool == 0:
            frame = self._render_frame(label, rng)
        else:
            key = (label, int(rng.integers(self.pool)))
            frame = self._cache.get(key)
            if frame is None:
                # Each pooled frame has its own seed, so the pool does not depend on frame order.
                part_rng = np.random.default_rng([self.seed, self._labels.index(label), key[1]])
                frame = self._cache[key] = self._render_frame(label, part_rng)
        self._emitted += 1
        return frame, label, None

    def describe(self):
        info = super().describe()
        info.update({"defect_rate": self.defect_rate, "seed": self.seed, "count": self.count, "pool": self.pool})
        return info

