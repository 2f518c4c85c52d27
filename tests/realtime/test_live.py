"""run_live: the sound card paces the stream; --buffer-blocks becomes PortAudio's latency.

A fake ``sounddevice`` records how its stream was opened; no audio device is needed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from unmix.realtime import StreamSeparator
from unmix.realtime.live import run_live
from unmix.realtime.pacing import Pacer, stream_report

from .common import music_like, tiny_separator

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeSD:
    """Opens a duplex stream that calls back twice, announces a latency, then Ctrl-C."""

    PortAudioError = OSError
    opened: ClassVar[list[dict[str, Any]]] = []

    class Stream:
        def __init__(self, callback: Any, channels: int, **kw: Any) -> None:
            self.callback, self.channels = callback, channels
            FakeSD.opened.append(kw)
            self.latency = (0.02, kw.get("latency", 0.1))

        def __enter__(self) -> Any:
            for k in range(2):
                out = np.zeros((128, self.channels), np.float32)
                self.callback(music_like(self.channels, 128, seed=k).T, out, 128, None, False)
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    InputStream = Stream

    @staticmethod
    def query_devices() -> list[str]:
        return ["card"]

    @staticmethod
    def sleep(ms: int) -> None:
        raise KeyboardInterrupt


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> type[FakeSD]:
    FakeSD.opened = []
    monkeypatch.setattr("unmix.realtime.live.load_sounddevice", lambda: FakeSD)
    return FakeSD


@pytest.mark.parametrize("buffers", [1, 3])
def test_buffer_blocks_ask_portaudio_for_that_many_blocks_of_latency(
    fake_sd: type[FakeSD], buffers: int
) -> None:
    stream = StreamSeparator(tiny_separator("16k-mono"))
    pacer = Pacer(128 / 16000, buffer_blocks=buffers)
    run_live(stream, 128, pacer, "0", "1", None, buffers)
    (opened,) = fake_sd.opened
    assert opened["blocksize"] == 128
    assert opened["latency"] == pytest.approx(buffers * 128 / 16000)
    report = stream_report(pacer, stream.latency, 128, 16000, {})
    assert report["device_latency_ms"] == pytest.approx([20.0, 1000 * buffers * 128 / 16000])
    assert report["blocks"] == 2 and report["overruns"] == 0


def test_without_buffer_blocks_the_device_default_is_kept(fake_sd: type[FakeSD]) -> None:
    stream = StreamSeparator(tiny_separator("16k-mono"))
    pacer = Pacer(128 / 16000)
    run_live(stream, 128, pacer, "0", "1", None)
    assert "latency" not in fake_sd.opened[0]
    assert stream_report(pacer, stream.latency, 128, 16000, {})["device_latency_ms"] == [
        20.0, 100.0
    ]  # fmt: skip
