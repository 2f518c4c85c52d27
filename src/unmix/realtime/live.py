"""Live audio through PortAudio (``sounddevice``, the optional ``unmix[live]`` extra).

The sound card paces the stream: its callback hands over one block of ``block`` samples,
:meth:`StreamSeparator.process` separates it, and one target is played back. PortAudio's
status flags (input overflow, output underflow) are counted as overruns. With
``buffer_blocks`` (``--buffer-blocks N``) the stream asks PortAudio for ``N`` blocks of
buffering (its ``latency`` setting, in seconds: ``N · block / rate``); without it, the
device's default. The report gives the latency PortAudio then announced
(``device_latency_ms``: input and output, or input only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnmixError
from .files import warm_up
from .pacing import Pacer
from .stream import StreamSeparator

NEEDS_EXTRA = (
    "live audio needs the optional 'live' extra (sounddevice + PortAudio): "
    "pip install 'unmix[live]'; without it, stream a file: unmix stream IN"
)


def load_sounddevice() -> Any:
    """The ``sounddevice`` module, or one clear error where it or PortAudio is missing."""
    try:
        import sounddevice  # optional extra, imported only for live audio
    except ImportError:
        raise UnmixError(NEEDS_EXTRA) from None
    except OSError as exc:  # the module is there, the PortAudio library is not
        raise UnmixError(f"live audio needs the PortAudio library ({exc})") from None
    return sounddevice


def run_live(
    stream: StreamSeparator,
    block: int,
    pacer: Pacer,
    input_device: str | None,
    output_device: str | None,
    play: str | None,
    buffer_blocks: int | None = None,
) -> None:
    """Separate the sound-card input until Ctrl-C, playing target ``play`` (default: the first).

    ``buffer_blocks``: blocks of device buffering to ask for (default: the device's own).
    """
    if input_device is None:
        raise UnmixError("--output-device needs --input-device (what should be separated?)")
    names = stream.output_names
    if play is not None and play not in names:
        raise UnmixError(f"--play {play}: not an output of this model ({', '.join(names)})")
    index = names.index(play) if play is not None else 0
    sd = load_sounddevice()
    try:
        if not len(sd.query_devices()):
            raise UnmixError("no audio device found; stream a file instead: unmix stream IN")
    except sd.PortAudioError as exc:
        raise UnmixError(f"no audio device: {exc}") from None
    pacer.paced_by_device = True
    warm_up(stream, block)
    C = stream.nb_channels

    def callback(indata: np.ndarray, *rest: Any) -> None:
        outdata = rest[0] if len(rest) == 4 else None
        status = rest[-1]
        if status:
            pacer.overruns += 1

        def work() -> None:
            out = stream.process(np.ascontiguousarray(indata.T, dtype=np.float32))
            if outdata is not None:
                outdata[:] = out[index].T

        pacer.run(work)

    common: dict[str, Any] = {
        "samplerate": stream.sample_rate, "blocksize": block, "dtype": "float32"
    }  # fmt: skip
    if buffer_blocks is not None:
        common["latency"] = buffer_blocks * block / stream.sample_rate
    try:
        if output_device is None:
            device = sd.InputStream(device=input_device, channels=C, callback=callback, **common)
        else:
            device = sd.Stream(
                device=(input_device, output_device), channels=C, callback=callback, **common
            )
        with device:
            pacer.device_latency = _seconds(getattr(device, "latency", None))
            print(f"streaming at {stream.latency_ms:.0f} ms latency; Ctrl-C stops")
            while True:
                sd.sleep(1000)
    except KeyboardInterrupt:
        return
    except sd.PortAudioError as exc:
        raise UnmixError(f"audio device error: {exc}") from None


def _seconds(latency: object) -> tuple[float, ...] | None:
    """PortAudio's announced latency (one number, or input and output) as a tuple."""
    values = latency if isinstance(latency, (tuple, list)) else (latency,)
    if not all(isinstance(v, (int, float)) for v in values):
        return None
    return tuple(float(v) for v in values)
