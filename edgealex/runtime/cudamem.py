"""Device memory, streams and pinned host buffers for the TensorRT runner.

One small interface, two implementations:

- :class:`CudaPythonMemory`: NVIDIA's cuda-python runtime API, imported as
  ``cuda.bindings.runtime`` (cuda-python >= 12.6.1 / 11.8.4) or the legacy ``cuda.cudart``.
  TensorRT 8.6+ samples use it; it installs from wheels on JetPack 5/6 and desktops.
- :class:`PycudaMemory`: pycuda, the only choice on JetPack 4 (CUDA 10.2, Python 3.6: cuda-python
  has no CUDA 10 build) and what the TensorRT 8.2/8.5 samples use.

Every cuda-python call returns a tuple ``(err, *results)``. :func:`check_cuda_err` accepts both
runtime (``cudaError_t``) and driver (``CUresult``) codes: the helper of the TensorRT 8.6-10.x
samples raised "Unknown error type" for every driver-API value because its ``else`` belonged to
the runtime-API ``if``. Here success is simply ``int(err) == 0`` for either enum.

Pointers and stream handles are plain ``int`` in this interface, which is what TensorRT's
``set_tensor_address``, ``execute_async_v2(bindings=...)`` and ``execute_async_v3`` take.
Nothing heavy is imported at module level.
"""

import ctypes

import numpy as np

from edgealex.errors import EdgeAlexError
from edgealex.log import logger

BACKENDS = ("cuda-python", "pycuda")


def check_cuda_err(err, call="CUDA call"):
    """Raise a user error unless ``err`` is a success code.

    Args:
        err: a ``cudaError_t`` (runtime API) or ``CUresult`` (driver API) value, or an int.
        call (str): the call that returned it, for the message.

    Raises:
        EdgeAlexError: the code is not 0 (``cudaSuccess`` / ``CUDA_SUCCESS``).
    """
    code = int(getattr(err, "value", err))
    if code == 0:
        return
    name = getattr(err, "name", None) or f"error {code}"
    note = "check that the NVIDIA driver is loaded (nvidia-smi or tegrastats) and a CUDA device is visible"
    if name in ("cudaErrorInsufficientDriver", "CUDA_ERROR_INSUFFICIENT_DRIVER", "cudaErrorNoDevice",
                "CUDA_ERROR_NO_DEVICE"):
        note = "this machine has no usable CUDA device or driver; use an ONNX Runtime engine on CPU instead"
    raise EdgeAlexError(call, f"failed with {name} ({code})", note)


def cuda_call(result, call="CUDA call"):
    """Unpack a cuda-python ``(err, *results)`` tuple: check ``err``, return the results.

    Returns:
        None for no result, the value for one, a tuple for several.
    """
    if not isinstance(result, tuple):  # some bindings return the bare error code
        check_cuda_err(result, call)
        return None
    check_cuda_err(result[0], call)
    rest = result[1:]
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


class CudaMemory:
    """Interface of a CUDA memory backend. Pointers and streams are ints.

    Use as a context manager or call :meth:`close`; everything still allocated is freed then.
    """

    name = "cuda"

    def device_name(self):
        """Name of the current CUDA device, e.g. "Xavier" or "NVIDIA GeForce RTX 4090"."""
        raise NotImplementedError

    def create_stream(self):
        """A new non-blocking stream (never the default stream, which TensorRT warns against)."""
        raise NotImplementedError

    def destroy_stream(self, stream):
        raise NotImplementedError

    def malloc(self, nbytes):
        """Device allocation of ``nbytes``; returns the device pointer."""
        raise NotImplementedError

    def free(self, pointer):
        raise NotImplementedError

    def pinned_empty(self, shape, dtype):
        """A page-locked host numpy array (needed for truly asynchronous copies)."""
        raise NotImplementedError

    def free_pinned(self, array):
        raise NotImplementedError

    def htod_async(self, device_pointer, host_array, stream):
        """Copy ``host_array`` (C-contiguous) to the device, queued on ``stream``."""
        raise NotImplementedError

    def dtoh_async(self, host_array, device_pointer, stream):
        """Copy ``host_array.nbytes`` from the device into ``host_array``, queued on ``stream``."""
        raise NotImplementedError

    def synchronize(self, stream):
        """Block until everything queued on ``stream`` has finished."""
        raise NotImplementedError

    def close(self):
        """Free every allocation, pinned buffer and stream still held."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


def _import_cudart():
    """cuda-python's runtime module under its new or legacy name, or None."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6.1 / 11.8.4
        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # legacy path, deprecated but still present
        return cudart
    except ImportError:
        return None


class CudaPythonMemory(CudaMemory):
    """:class:`CudaMemory` on cuda-python's runtime API."""

    name = "cuda-python"

    def __init__(self, device=0, cudart=None):
        self.cudart = cudart or _import_cudart()
        if self.cudart is None:
            raise EdgeAlexError("cuda-python", "not installed in this Python",
                                "install it: pip install 'edgealex[cuda]' (or use pycuda on JetPack 4)")
        self.device = int(device)
        # cudaSetDevice also creates/retains the primary context, shared with TensorRT.
        cuda_call(self.cudart.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")
        self._device_ptrs = set()
        self._pinned = {}  # id(array) -> (host pointer, array)
        self._streams = {}  # int handle -> cudaStream_t object

    def device_name(self):
        props = cuda_call(self.cudart.cudaGetDeviceProperties(self.device), "cudaGetDeviceProperties")
        return _decode_name(props.name)

    def create_stream(self):
        flags = getattr(self.cudart, "cudaStreamNonBlocking", 1)
        stream = cuda_call(self.cudart.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        handle = int(stream)
        self._streams[handle] = stream
        return handle

    def destroy_stream(self, stream):
        self._streams.pop(int(stream), None)
        cuda_call(self.cudart.cudaStreamDestroy(int(stream)), "cudaStreamDestroy")

    def malloc(self, nbytes):
        pointer = int(cuda_call(self.cudart.cudaMalloc(max(int(nbytes), 1)), f"cudaMalloc({nbytes} bytes)"))
        self._device_ptrs.add(pointer)
        return pointer

    def free(self, pointer):
        self._device_ptrs.discard(int(pointer))
        cuda_call(self.cudart.cudaFree(int(pointer)), "cudaFree")

    def pinned_empty(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        pointer = int(cuda_call(self.cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes} bytes)"))
        # View the page-locked bytes as a numpy array (the TensorRT 8.6+ samples' idiom, via uint8
        # so float16 works too: ctypes has no half type).
        raw = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
        array = raw[: int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
        self._pinned[id(array)] = (pointer, array)
        return array

    def free_pinned(self, array):
        entry = self._pinned.pop(id(array), None)
        if entry is not None:
            cuda_call(self.cudart.cudaFreeHost(entry[0]), "cudaFreeHost")

    def htod_async(self, device_pointer, host_array, stream):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_call(self.cudart.cudaMemcpyAsync(int(device_pointer), host_array.ctypes.data, host_array.nbytes,
                                              kind, int(stream)), "cudaMemcpyAsync(host to device)")

    def dtoh_async(self, host_array, device_pointer, stream):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(self.cudart.cudaMemcpyAsync(host_array.ctypes.data, int(device_pointer), host_array.nbytes,
                                              kind, int(stream)), "cudaMemcpyAsync(device to host)")

    def synchronize(self, stream):
        cuda_call(self.cudart.cudaStreamSynchronize(int(stream)), "cudaStreamSynchronize")

    def close(self):
        problems = []
        for handle in list(self._streams):
            problems += _attempt(self.destroy_stream, handle)
        for pointer in list(self._device_ptrs):
            problems += _attempt(self.free, pointer)
        for _, array in list(self._pinned.values()):
            problems += _attempt(self.free_pinned, array)
        for problem in problems:
            logger.warning("releasing CUDA memory: %s", problem)


class PycudaMemory(CudaMemory):
    """:class:`CudaMemory` on pycuda (JetPack 4 and older JetPack 5 setups).

    pycuda contexts are bound to the thread that pushed them: activate, infer and deactivate a
    runner on this backend from one thread (``run_loop`` infers on the calling thread for this
    reason).
    """

    name = "pycuda"

    def __init__(self, device=0):
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            raise EdgeAlexError("pycuda", f"not installed in this Python ({exc})",
                                "on JetPack 4: pip3 install pycuda with /usr/local/cuda/bin on PATH; "
                                "elsewhere prefer pip install 'edgealex[cuda]'")
        self.drv = drv
        self.device = int(device)
        drv.init()
        dev = drv.Device(self.device)
        # Retain the device's primary context (what TensorRT and the runtime API use) rather than
        # creating a new one, as pycuda.autoprimaryctx does (pycuda >= 2021.1); older pycuda
        # (JetPack 4 pins < 2021.1 on Python 3.6) only has make_context.
        if hasattr(dev, "retain_primary_context"):
            self._context = dev.retain_primary_context()
        else:
            self._context = dev.make_context()
            self._context.pop()
        self._context.push()
        self._allocations = {}  # int pointer -> DeviceAllocation
        self._pinned = {}
        self._streams = {}

    def device_name(self):
        return self.drv.Device(self.device).name()

    def create_stream(self):
        stream = self.drv.Stream()
        self._streams[int(stream.handle)] = stream
        return int(stream.handle)

    def destroy_stream(self, stream):
        self._streams.pop(int(stream), None)  # pycuda destroys a stream when it is collected

    def malloc(self, nbytes):
        allocation = self.drv.mem_alloc(max(int(nbytes), 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, pointer):
        allocation = self._allocations.pop(int(pointer), None)
        if allocation is not None:
            allocation.free()

    def pinned_empty(self, shape, dtype):
        array = self.drv.pagelocked_empty(shape, np.dtype(dtype))
        self._pinned[id(array)] = array
        return array

    def free_pinned(self, array):
        held = self._pinned.pop(id(array), None)
        if held is not None and getattr(held, "base", None) is not None and hasattr(held.base, "free"):
            held.base.free()

    def htod_async(self, device_pointer, host_array, stream):
        self.drv.memcpy_htod_async(int(device_pointer), host_array, self._streams[int(stream)])

    def dtoh_async(self, host_array, device_pointer, stream):
        self.drv.memcpy_dtoh_async(host_array, int(device_pointer), self._streams[int(stream)])

    def synchronize(self, stream):
        self._streams[int(stream)].synchronize()

    def close(self):
        problems = []
        for pointer in list(self._allocations):
            problems += _attempt(self.free, pointer)
        for array in list(self._pinned.values()):
            problems += _attempt(self.free_pinned, array)
        self._streams.clear()
        if self._context is not None:
            problems += _attempt(self._context.pop)
            if hasattr(self._context, "detach"):
                problems += _attempt(self._context.detach)
            self._context = None
        for problem in problems:
            logger.warning("releasing CUDA memory: %s", problem)


def _attempt(func, *args):
    """Run a release step; return [] or [a description of what failed] (cleanup goes on)."""
    try:
        func(*args)
        return []
    except Exception as exc:  # keep releasing the rest
        return ["{}: {}".format(getattr(func, "__name__", "release"), exc)]


def _decode_name(name):
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(name).strip()


def available_backends():
    """Names of the CUDA memory backends importable here, preferred first."""
    found = []
    if _import_cudart() is not None:
        found.append("cuda-python")
    try:
        import pycuda.driver  # noqa: F401
        found.append("pycuda")
    except ImportError:
        pass
    return found


def open_cuda(backend=None, device=0):
    """Open the CUDA memory layer.

    Args:
        backend (str): "cuda-python" or "pycuda"; None picks cuda-python where it imports, else
            pycuda. Defaults to None.
        device (int): CUDA device index. Defaults to 0.

    Returns:
        CudaMemory: the opened backend.

    Raises:
        EdgeAlexError: no backend installed, unknown name, or no usable CUDA device.
    """
    if backend not in (None,) + BACKENDS:
        raise EdgeAlexError(f"cuda backend {backend!r}", "unknown",
                            "use one of: " + ", ".join(BACKENDS))
    if backend == "pycuda":
        return PycudaMemory(device)
    if backend == "cuda-python":
        return CudaPythonMemory(device)
    cudart = _import_cudart()
    if cudart is not None:
        return CudaPythonMemory(device, cudart=cudart)
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        raise EdgeAlexError(
            "TensorRT runner", "neither cuda-python nor pycuda is installed (needed for GPU memory)",
            "install one: pip install 'edgealex[cuda]' (JetPack 5/6, desktops) or pycuda (JetPack 4)")
    return PycudaMemory(device)


def current_device_name(backend=None, device=0):
    """Name of CUDA device ``device`` (what engine sidecars record as ``device_name``)."""
    with open_cuda(backend, device) as cuda:
        return cuda.device_name()
