"""User data from ``.npy``, ``.npz``, ``.pt`` files and folders of images, checked at the boundary.

:func:`load_file_data` reads one source and returns :class:`FileData` ``(x, labels, kind)``:

* ``kind = "vector"``: an array ``(n, D)`` (or ``(n, *event)`` of another rank that is not an
  image layout) of finite floats, used as it is.
* ``kind = "image"``: an array ``(n, H, W)``, ``(n, C, H, W)`` or channels-last ``(n, H, W, C)``
  with ``C`` in 1, 3, 4, or a folder of image files read with Pillow. Images come back
  ``(n, C, H, W)`` float32 in ``[-1, 1]``: ``uint8`` values are divided by 255; floats must lie in
  ``[0, 1]`` (mapped by ``2 v - 1``) or in ``[-1, 1]`` (kept, recognized by a negative value).

Arrays in an ``.npz`` or a ``.pt`` dictionary are found under the key ``key`` (default: the only
array, or one of ``x``, ``data``, ``images``, ``samples``); labels, when present, under ``y``,
``labels`` or ``targets``. A ``.pt`` file is read with ``torch.load(weights_only=True)`` (no
arbitrary code runs). Every failure is a ``ValueError`` or ``FileNotFoundError`` naming the file,
what was expected, what came, and the fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["FileData", "load_file_data", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_DATA_KEYS = ("x", "data", "images", "samples")
_LABEL_KEYS = ("y", "labels", "targets")


class FileData(NamedTuple):
    """Data read from a file: ``x`` float32 ``(n, *event)``, optional int64 ``labels (n,)``, ``kind``."""

    x: torch.Tensor
    labels: torch.Tensor | None
    kind: str


def _pick(mapping: dict[str, Any], key: str | None, path: Path) -> tuple[Any, Any]:
    names = sorted(mapping)
    if key is not None:
        if key not in mapping:
            raise ValueError(f"{path}: no array named {key!r}; it holds {names}. Pass key= one of these")
        data = mapping[key]
    else:
        found = [k for k in _DATA_KEYS if k in mapping]
        if found:
            data = mapping[found[0]]
        elif len(mapping) == 1:
            data = mapping[names[0]]
        else:
            raise ValueError(
                f"{path}: cannot tell which array is the data among {names}; name it {list(_DATA_KEYS)[0]!r} "
                "or pass key= (the CLI's --data-key)"
            )
    labels = next((mapping[k] for k in _LABEL_KEYS if k in mapping and k != key), None)
    return data, labels


def _to_numpy(value: Any, what: str, path: Path) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ValueError(f"{path}: the {what} must be an array or a tensor; got {type(value).__name__}")


class PickledFileError(ValueError):
    """A ``.pt`` file that holds pickled Python objects, refused without running its code.

    A ValueError naming the file; ``path`` and ``detail`` (what torch refused) let the CLI name its flag too.
    """

    def __init__(self, path: str | Path, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(
            f"{path}: holds pickled Python objects, not only tensors ({detail}); sdeflow loads .pt files without running "
            "code (torch.load with weights_only=True) and refuses it: save plain tensors, a dict of tensors, or use .npy/.npz"
        )


def unpickling_detail(err: BaseException) -> str:
    """The line of torch's refusal (``weights_only=True``) that says what the file holds, without its
    advice to load the file with code execution on."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "WeightsUnpickler error:" in ln:
            detail = ln.split("WeightsUnpickler error:", 1)[1].strip()
            return detail.split(". ", 1)[0].rstrip(".")
    skip = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")
    return next((ln for ln in lines if not ln.startswith(skip)), type(err).__name__)


def _read_array_file(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                data, labels = _pick({k: archive[k] for k in archive.files}, key, path)
            return data, labels
        if suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                data, labels = _pick(obj, key, path)
            elif isinstance(obj, (tuple, list)) and len(obj) == 2:
                data, labels = obj
            else:
                data, labels = obj, None
            return _to_numpy(data, "data", path), None if labels is None else _to_numpy(labels, "labels", path)
    except pickle.UnpicklingError as err:
        # torch.load(weights_only=True) refuses pickled Python objects (it never runs a file's code).
        raise PickledFileError(path, unpickling_detail(err)) from err
    except (OSError, EOFError, ValueError, RuntimeError, KeyError) as err:
        if isinstance(err, ValueError) and str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read it as a {suffix} file ({type(err).__name__}: {err})") from err
    raise ValueError(
        f"{path}: unsupported file type {suffix!r}; expected .npy, .npz, .pt or a folder of images ({', '.join(IMAGE_SUFFIXES)})"
    )


def _read_image_folder(path: Path, mode: str | None) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:  # pragma: no cover - pillow is a dependency
        raise ImportError("reading a folder of images needs Pillow: pip install pillow") from err
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{path}: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for file in files:
        try:
            with Image.open(file) as img:
                if mode is not None:
                    img = img.convert(mode)
                elif img.mode not in ("L", "RGB"):
                    img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK", "YCbCr") else "L")
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{file}: not a readable image ({err}); remove it from the folder or fix it") from err
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arrays and arr.shape != arrays[0].shape:
            raise ValueError(
                f"{file}: size {arr.shape[1]}x{arr.shape[0]} with {arr.shape[2]} channel(s) differs from "
                f"{files[0].name}'s {arrays[0].shape[1]}x{arrays[0].shape[0]} with {arrays[0].shape[2]}; "
                "all images of a folder must have one size and mode (resize them, or pass mode='L'/'RGB')"
            )
        arrays.append(arr)
    return np.stack(arrays).transpose(0, 3, 1, 2)  # (n, C, H, W)


def _image_layout(arr: np.ndarray) -> np.ndarray | None:
    """``(n, C, H, W)`` if ``arr`` has an image layout, else ``None``."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4:
        first, last = arr.shape[1] in (1, 3, 4), arr.shape[3] in (1, 3, 4)
        if first and last:  # e.g. (n, 4, 4, 3): the two equal sides are the image's height and width
            first = arr.shape[2] == arr.shape[3] or arr.shape[1] != arr.shape[2]
            last = not first
        if first:
            return arr
        if last:
            return arr.transpose(0, 3, 1, 2)
        raise ValueError(
            f"a 4-D array must be images (n, C, H, W) or (n, H, W, C) with C in 1, 3, 4; got shape {arr.shape}"
        )
    return None


def _scale_images(arr: np.ndarray, source: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 127.5 - 1.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{source}: images must be uint8 (0..255) or floats in [0, 1] or [-1, 1]; got dtype {arr.dtype}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        return (2.0 * arr - 1.0).astype(np.float32)
    if lo >= -1.0 and hi <= 1.0:
        return arr.astype(np.float32)
    raise ValueError(
        f"{source}: float images must lie in [0, 1] or [-1, 1]; got values in [{lo:.4g}, {hi:.4g}]. "
        "Rescale them (e.g. divide 0..255 values by 255) or save them as uint8"
    )


def load_file_data(path: str | Path, *, key: str | None = None, mode: str | None = None, max_items: int | None = None) -> FileData:
    """Read user data from ``path`` (``.npy``, ``.npz``, ``.pt``/``.pth`` or a folder of images).

    Args:
        path: the file or folder.
        key: the array's name inside an ``.npz`` or a ``.pt`` dictionary.
        mode: Pillow mode (``"L"`` or ``"RGB"``) images of a folder are converted to (default: as stored).
        max_items: keep at most this many items (the first ones).

    Returns:
        :class:`FileData`; images ``(n, C, H, W)`` in ``[-1, 1]``, vectors ``(n, *event)`` float32.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data path {str(path)!r} does not exist; give a .npy, .npz, .pt file or a folder of images")
    labels = None
    if path.is_dir():
        arr = _read_image_folder(path, mode)
        image = True
    else:
        arr, labels = _read_array_file(path, key)
        arr = np.asarray(arr)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{path}: the data must be a numeric array; got dtype {arr.dtype}")
        if arr.ndim < 2:
            raise ValueError(f"{path}: the data must have shape (n, *event_shape), e.g. (n, D); got shape {arr.shape}")
        layout = _image_layout(arr)
        image = layout is not None
        if image:
            arr = layout
    if arr.shape[0] < 2:
        raise ValueError(f"{path}: need at least 2 items to train on; got {arr.shape[0]}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{path}: the data contains NaN or infinite values; clean them before training")
    x = _scale_images(arr, path) if image else arr.astype(np.float32)
    y = None
    if labels is not None:
        labels = np.asarray(labels).reshape(-1) if np.asarray(labels).ndim == 2 and np.asarray(labels).shape[1] == 1 else np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
            raise ValueError(
                f"{path}: labels must have shape (n,) = ({x.shape[0]},) to match the data; got shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
            raise ValueError(f"{path}: labels must be integers >= 0 (class indices); got dtype {labels.dtype}")
        y = torch.from_numpy(labels.astype(np.int64))
    if max_items is not None:
        x = x[:max_items]
        y = None if y is None else y[:max_items]
    return FileData(torch.from_numpy(np.ascontiguousarray(x)), y, "image" if image else "vector")
