"""Reading audio files: soundfile for wav/flac/ogg, PyAV (FFmpeg) for everything else."""
from __future__ import annotations

import os

import numpy as np

from ..errors import AudioInputError

# Formats libsndfile reads natively; anything else (mp3, m4a, aac, opus, video files) goes
# through FFmpeg via PyAV.
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


def read_audio_file(path: str) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples [channels, samples] and its sample rate.

    Raises AudioInputError naming the file when it is missing, unreadable or holds no audio.
    """
    path = os.path.expanduser(str(path).strip())
    if not path:
        raise AudioInputError("No audio file given: type the path of a wav, flac, ogg, mp3 or m4a file.")
    if not os.path.isfile(path):
        raise AudioInputError(f"Audio file '{path}' does not exist: check the path.")
    ext = os.path.splitext(path)[1].lower()
    if ext in SOUNDFILE_EXTENSIONS:
        try:
            samples, rate = _read_with_soundfile(path)
        except Exception:  # libsndfile refuses some valid files (odd codecs): let FFmpeg try
            samples, rate = _read_with_pyav(path)
    else:
        samples, rate = _read_with_pyav(path)
    if samples.shape[-1] == 0:
        raise AudioInputError(f"Audio file '{path}' holds no samples (zero length): use a file with sound in it.")
    return samples, rate


def _read_with_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # [samples, channels]
    return np.ascontiguousarray(data.T), int(rate)


def _read_with_pyav(path: str) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioInputError(f"File '{path}' has no audio stream: give a file that contains sound.")
            stream = container.streams.audio[0]
            # Planar float32 keeps one row per channel whatever the codec's native format.
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
    except AudioInputError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error types; all mean "cannot decode"
        raise AudioInputError(
            f"Cannot read audio file '{path}': {exc}. Convert it to wav/flac/mp3 or check that it is not corrupt."
        ) from None
    if not chunks:
        raise AudioInputError(f"Audio file '{path}' decodes to no samples (zero length or corrupt).")
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), rate
