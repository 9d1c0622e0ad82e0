"""NVIDIA GPU power through NVML (nvidia-ml-py).

Volta and newer have a total-energy counter (mJ since the driver loaded): energy over a window is
a counter difference. Otherwise ``nvmlDeviceGetPowerUsage`` (mW) is polled; on Ampere and newer
(except GA100) that value is itself a 1 s average, which blurs short windows (facts §6.5). NVML
measures the GPU board only, not the host.
"""

from edgealex.bench.power.base import MeterUnavailable, PowerMeter

DEFAULT_INTERVAL_S = 0.02  # the energy counter updates every 20-100 ms


class NvmlMeter(PowerMeter):
    """GPU power/energy via NVML.

    Args:
        index (int): GPU index. Defaults to 0.
        interval_s (float): polling interval. Defaults to 20 ms.
    """

    name = "nvml"

    def __init__(self, index=0, interval_s=None):
        super().__init__(interval_s or DEFAULT_INTERVAL_S)
        self.index = index
        self._nvml = None
        self._handle = None

    def open_impl(self):
        try:
            import pynvml
        except ImportError as exc:
            raise MeterUnavailable(f"nvidia-ml-py is not installed ({exc}); pip install 'edgealex[nvml]'")
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded / ...
            raise MeterUnavailable(f"NVML did not initialise ({type(exc).__name__}: {exc}); no NVIDIA driver here (Jetson iGPUs have no "
                                   "NVML power either)")
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            name = pynvml.nvmlDeviceGetName(handle)
        except Exception as exc:
            pynvml.nvmlShutdown()
            raise MeterUnavailable(f"NVML has no GPU {self.index} ({exc})")
        self._nvml, self._handle = pynvml, handle
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self.kind = "energy"
            self.source = f"NVML total energy counter (mJ), GPU {self.index} {name}"
        except Exception:
            try:
                pynvml.nvmlDeviceGetPowerUsage(handle)
            except Exception as exc:
                self.close_impl()
                raise MeterUnavailable(f"GPU {name} reports neither energy nor power through NVML ({exc})")
            self.kind = "power"
            self.source = f"NVML power usage (mW), GPU {self.index} {name}"
            self.notes.append(f"no energy counter on this GPU: power polled every {self.interval_s * 1e3:g} ms; on Ampere+ the value is "
                              "a 1 s average")
        self.total = f"GPU board power ({name}), not the host"

    def read(self):
        if self.kind == "energy":
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3, {}
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3, {}

    def close_impl(self):
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down twice is harmless
                pass
            self._nvml = None


__all__ = ["NvmlMeter"]
