r"""Frames and video files: read (``.npz`` or any video PyAV decodes), sample, resize, normalise.

A video is a ``uint8`` array ``[T, H, W, 3]`` (RGB). Two on-disk forms are read:

- ``.npz`` with key ``frames``: ``uint8 [T, H, W, 3]``, ``T, H, W >= 1`` (the rendered benchmark,
  :mod:`readpvla.data.rendered`, writes these). Read with ``allow_pickle=False``.
- a real video file (``.mp4``, ``.avi``, ``.webm``, ``.mkv``, ``.mov``, ...), decoded with PyAV
  (the ``av`` package, which bundles FFmpeg) to RGB.

**Uniform frame sampling** (CLIP4Clip's ``slice_framepos = 2``): of ``n`` decoded frames, keep

.. math:: i_j = \big\lfloor j \cdot \tfrac{n - 1}{m - 1} \big\rfloor, \qquad j = 0, \dots, m - 1

computed exactly as CLIP4Clip does, ``np.linspace(0, n - 1, num=m).astype(int)`` (so float
rounding included; first and last frame always kept; ``m = 1`` keeps frame 0). Two differences from CLIP4Clip, which first resamples the video to 1 frame per
second and then applies the same formula only when it has more than ``m`` frames: here the
formula runs over *every* decoded frame, and a video with fewer than ``m`` frames has frames
repeated (the same formula) instead of zero padding plus a mask, so every sample has exactly
``m`` frames. :func:`sample_indices` is the formula.

**Resizing** is dependency-free numpy: separable linear interpolation with a triangle filter
whose support widens by the scale factor when shrinking (the antialiased "bilinear" of PIL and
of ``torchvision``'s ``antialias=True``), in float32, rounded to uint8; a same-size "resize"
returns the frames unchanged. ``size=int`` resizes the short side to ``size`` and centre-crops a
``size x size`` square (CLIP's ``Resize`` + ``CenterCrop``, but a triangle instead of a bicubic
filter); ``size=(h, w)`` resizes to exactly that.

:func:`clip_normalize` turns ``uint8 [T, H, W, 3]`` into CLIP's input ``float32 [T, 3, H, W]``
with CLIP's mean and std.

Every problem with a file raises ``ValueError`` naming the file: a missing file
(:class:`MissingVideoError`, also a ``FileNotFoundError``), a file that does not decode, no
video stream, zero frames, an ``.npz`` without ``frames`` or with the wrong dtype or shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.data.qvh import _npz_array, _open_npz, _why

__all__ = ["CLIP_MEAN", "CLIP_STD", "VIDEO_EXTENSIONS", "MissingVideoError", "clip_normalize",
           "check_frames", "read_frames", "resize_frames", "sample_indices", "write_mp4"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: extensions :func:`read_frames` decodes with PyAV (anything else that is not ``.npz`` is tried
#: with PyAV as well)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")

PathLike = str | Path


class MissingVideoError(FileNotFoundError, ValueError):
    """A video file that does not exist. Both a ``FileNotFoundError`` and a ``ValueError`` (every
    data problem of this package is a ``ValueError``)."""


def sample_indices(n: int, num_frames: int) -> np.ndarray:
    """Uniform sampling: ``np.linspace(0, n - 1, num=num_frames).astype(int64)`` (CLIP4Clip).

    Args:
        n: frames available (>= 1).
        num_frames: frames wanted (>= 1); more than ``n`` repeats frames.

    Returns:
        int64 ``[num_frames]``, non-decreasing, first 0 and last ``n - 1`` (for ``num_frames > 1``).
    """
    if n < 1 or num_frames < 1:
        raise ValueError(f"need n >= 1 and num_frames >= 1, got n={n}, num_frames={num_frames}")
    return np.linspace(0, n - 1, num=num_frames).astype(np.int64)


def check_frames(frames: Any, where: str = "frames") -> np.ndarray:
    """``frames`` as a C-contiguous ``uint8 [T, H, W, 3]`` array with ``T, H, W >= 1``;
    anything else raises ``ValueError(where + ": ...")``."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"{where}: frames must be uint8 [T, H, W, 3], got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{where}: frames must be uint8 [T, H, W, 3] (RGB), got shape "
                         f"{tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: the video has zero frames")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{where}: frames have zero height or width: {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


def _size_arg(size: int | Sequence[int] | None) -> tuple[str, tuple[int, int]] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        return "short", (int(size), int(size))
    hw = tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be an int or (height, width) >= 1, got {size!r}")
    return "exact", (hw[0], hw[1])


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` float64 weights of antialiased linear interpolation (rows sum to 1)."""
    scale = n_in / n_out
    support = max(scale, 1.0)                                 # triangle half-width, input pixels
    centre = (np.arange(n_out) + 0.5) * scale - 0.5           # output pixel centres, input coords
    x = np.arange(n_in)
    w = np.clip(1.0 - np.abs(x[None, :] - centre[:, None]) / support, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def resize_frames(frames: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize ``uint8 [T, H, W, 3]`` frames (numpy only; see the module docstring).

    Args:
        frames: the video.
        size: ``int``: short side to ``size``, then centre crop to ``size x size`` (CLIP);
            ``(h, w)``: resize to exactly ``h x w``.

    Returns:
        ``uint8 [T, h, w, 3]`` (the input itself when nothing changes).
    """
    frames = check_frames(frames)
    mode, (h, w) = _size_arg(size)                            # type: ignore[misc]
    t, h0, w0, _ = frames.shape
    if mode == "short":
        s = size / min(h0, w0)                                # type: ignore[operator]
        rh, rw = max(h, round(h0 * s)), max(w, round(w0 * s))
    else:
        rh, rw = h, w
    out = frames
    if (rh, rw) != (h0, w0):
        a = _resize_matrix(h0, rh).astype(np.float32)                             # (rh, h0)
        b = _resize_matrix(w0, rw).astype(np.float32)                             # (rw, w0)
        x = frames.astype(np.float32).transpose(0, 3, 1, 2)                       # (T, 3, H, W)
        x = (a @ x @ b.T).transpose(0, 2, 3, 1)                                   # (T, rh, rw, 3)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if (rh, rw) != (h, w):                                    # centre crop (short-side mode)
        top, left = (rh - h) // 2, (rw - w) // 2
        out = out[:, top: top + h, left: left + w]
    return np.ascontiguousarray(out)


def _read_npz(path: Path) -> np.ndarray:
    npz = _open_npz(path, " with key 'frames'")
    with npz:
        if "frames" not in npz.files:
            raise ValueError(f"{path}: no array 'frames' (has {sorted(npz.files)}); expected "
                             "uint8 [T, H, W, 3] under key 'frames'")
        arr = _npz_array(npz, "frames", f"{path}: 'frames'")
    return check_frames(arr, str(path))


def _decode(path: Path, num_frames: int | None) -> np.ndarray:
    """Decode ``path`` with PyAV to ``uint8 [T, H, W, 3]``, keeping only the uniformly sampled
    frames when ``num_frames`` is given (two passes if the container's frame count is wrong)."""
    import av

    def run(keep: np.ndarray | None) -> tuple[list[np.ndarray], int]:
        wanted = None if keep is None else set(keep.tolist())
        out: dict[int, np.ndarray] = {}
        n = 0
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{path}: no video stream (streams: "
                                     f"{[s.type for s in container.streams]})")
                stream = container.streams.video[0]
                for frame in container.decode(stream):
                    if wanted is None or n in wanted:
                        out[n] = frame.to_ndarray(format="rgb24")
                    n += 1
        except ValueError as err:
            if str(err).startswith(f"{path}:"):
                raise
            raise ValueError(f"{path}: cannot be decoded as a video ({_why(err)})") from None
        except MemoryError:
            raise
        except Exception as err:  # av.error.FFmpegError and friends (OSError, ...)
            raise ValueError(f"{path}: cannot be decoded as a video ({_why(err)})") from None
        if n == 0:
            raise ValueError(f"{path}: the video has zero decodable frames")
        if keep is None:
            return [out[i] for i in range(n)], n
        if not all(i in out for i in wanted):               # type: ignore[union-attr]
            return [], n                                    # the container's count was wrong
        return [out[int(i)] for i in keep], n

    expected = 0
    if num_frames is not None:
        try:
            with av.open(str(path)) as container:
                if container.streams.video:
                    expected = int(container.streams.video[0].frames or 0)
        except MemoryError:
            raise
        except Exception as err:
            raise ValueError(f"{path}: cannot be decoded as a video ({_why(err)})") from None
    if num_frames is not None and expected > 0:
        frames, n = run(sample_indices(expected, num_frames))
        if frames and n == expected:
            return np.stack(frames)
    frames, n = run(None)
    video = np.stack(frames)
    if num_frames is not None:
        video = video[sample_indices(n, num_frames)]
    return video


def read_frames(path: PathLike, num_frames: int | None = None,
                size: int | Sequence[int] | None = None) -> np.ndarray:
    """Read a video as ``uint8 [T, H, W, 3]`` RGB.

    Args:
        path: an ``.npz`` with key ``frames`` (``uint8 [T, H, W, 3]``) or a video file PyAV
            decodes (``.mp4``, ``.avi``, ``.webm``, ...).
        num_frames: if given, sample this many frames uniformly (:func:`sample_indices`);
            ``None`` keeps every frame.
        size: if given, resize (:func:`resize_frames`): ``int`` = short side + centre crop
            (square), ``(h, w)`` = exact.

    Returns:
        C-contiguous ``uint8 [T', H', W', 3]``.

    Raises:
        MissingVideoError: no such file (a ``ValueError`` and a ``FileNotFoundError``).
        ValueError: ``"PATH: ..."``: an ``.npz`` that cannot be read, lacks ``frames``, or holds
            another dtype / shape; a video file that does not decode, has no video stream or
            zero frames.
    """
    path = Path(path)
    if num_frames is not None and (not isinstance(num_frames, int | np.integer)
                                   or isinstance(num_frames, bool) or num_frames < 1):
        raise ValueError(f"num_frames must be a positive int or None, got {num_frames!r}")
    _size_arg(size)                                           # validate before any decoding
    if not path.is_file():
        raise MissingVideoError(f"video file not found: {path}")
    if path.suffix.lower() == ".npz":
        video = _read_npz(path)
        if num_frames is not None:
            video = video[sample_indices(video.shape[0], num_frames)]
    else:
        video = check_frames(_decode(path, num_frames), str(path))
    if size is not None:
        video = resize_frames(video, size)
    return np.ascontiguousarray(video)


def clip_normalize(frames: np.ndarray) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` -> CLIP input ``float32 [T, 3, H, W]``: ``(x / 255 - mean) / std``
    per channel with :data:`CLIP_MEAN` / :data:`CLIP_STD`. (``torch.from_numpy`` the result.)"""
    frames = check_frames(frames)
    x = frames.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))                          # (T, 3, H, W)


def write_mp4(path: PathLike, frames: np.ndarray, fps: float = 8, codec: str = "libx264",
              crf: int | None = 18, pix_fmt: str = "yuv420p") -> Path:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames as a video file with PyAV.

    Args:
        path: output file; the container follows the extension (``.mp4``, ``.mkv``, ...).
        frames: the video; ``H`` and ``W`` must be even for ``yuv420p``.
        fps: frame rate.
        codec: FFmpeg encoder (``"libx264"`` = H.264, plays everywhere; ``"mpeg4"``, ...).
        crf: x264 constant rate factor (0 = lossless luma, 18 = visually lossless, the default;
            ``None`` = the encoder's default). Only passed to ``libx264``.
        pix_fmt: pixel format of the stream (``yuv420p`` halves chroma resolution; lossy even at
            ``crf=0``).

    Returns:
        ``Path(path)``.
    """
    import av

    path = Path(path)
    frames = check_frames(frames, f"write_mp4({path})")
    t, h, w, _ = frames.shape
    if pix_fmt in ("yuv420p", "yuvj420p", "nv12") and (h % 2 or w % 2):
        raise ValueError(f"{path}: {pix_fmt} needs even height and width, got {h}x{w}; pad or "
                         "resize the frames first")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264" and crf is not None:
            stream.options = {"crf": str(int(crf))}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
