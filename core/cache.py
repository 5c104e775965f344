"""A safe, general on-disk cache: JSON text and raw numpy arrays only, never pickles.

:class:`SafeCache` wraps :class:`diskcache.Cache` (SQLite index + value files; safe for several threads
and processes writing at once, and for a writer killed mid-write: SQLite commits an entry only after its
value is complete).  diskcache pickles every value it does not recognise and unpickles whatever it finds
in its folder, so a writable cache folder is a code-execution hole (CVE-2025-69872).  Here:

- values are stored as ``bytes`` only, through :class:`SafeDisk`, which refuses to store anything else
  and refuses to load an entry whose stored mode is *pickle* (or *text*): such an entry is reported,
  deleted and treated as a miss, never unpickled;
- a stored value is an envelope ``MAGIC | kind | sha256(body) | body``; the body is UTF-8 JSON text, or a
  JSON header (``dtype``, ``shape``) followed by the raw array buffer read back with
  :func:`numpy.frombuffer` (object dtypes refused).  A truncated or altered entry fails its checksum and
  is a miss, never a wrong value;
- keys are strings ``"{namespace}/{key}"``; :func:`content_key` builds a sha256 content hash of the
  parts that determine a value (window bytes, context JSON, backend, model, prompt version, scope, ...).

Failures are not cached by this module's callers: only put what is good.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import struct
from pathlib import Path
from typing import Any, Iterator, Mapping

import diskcache
import numpy as np

from core.errors import DataError
from core.io import json_default

log = logging.getLogger(__name__)

__all__ = ["SafeCache", "SafeDisk", "content_key", "encode_json", "decode_json", "encode_array",
           "decode_array", "CorruptEntry"]

_MAGIC = b"S2KD\x01"
_KIND_JSON = b"J"
_KIND_ARRAY = b"A"
_KIND_ARRAYS = b"M"
_DIGEST = 32
_REJECTED = object()  # what SafeDisk hands back for an entry it will not decode


class CorruptEntry(ValueError):
    """A stored value that is not a complete, valid envelope."""


# --------------------------------------------------------------------------- encoding
def _envelope(kind: bytes, body: bytes) -> bytes:
    return _MAGIC + kind + hashlib.sha256(body).digest() + body


def _open_envelope(blob: bytes, kind: bytes) -> bytes:
    head = len(_MAGIC) + 1 + _DIGEST
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < head or blob[: len(_MAGIC)] != _MAGIC:
        raise CorruptEntry("not an s2kd cache entry")
    if blob[len(_MAGIC): len(_MAGIC) + 1] != kind:
        raise CorruptEntry(f"entry kind {blob[len(_MAGIC):len(_MAGIC) + 1]!r}, expected {kind!r}")
    digest = blob[len(_MAGIC) + 1: head]
    body = bytes(blob[head:])
    if hashlib.sha256(body).digest() != digest:
        raise CorruptEntry("checksum mismatch (truncated or altered entry)")
    return body


def encode_json(value: Any) -> bytes:
    """Envelope for a JSON-serialisable value (NaN/Inf refused)."""
    return _envelope(_KIND_JSON, json.dumps(value, sort_keys=True, allow_nan=False,
                                            ensure_ascii=False).encode("utf-8"))


def decode_json(blob: bytes) -> Any:
    """Inverse of :func:`encode_json`; raises :class:`CorruptEntry`."""
    try:
        return json.loads(_open_envelope(blob, _KIND_JSON).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptEntry(f"bad JSON body: {exc}") from None


def _array_body(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.hasobject or array.dtype.fields is not None:
        raise TypeError(f"only plain numeric arrays can be cached, not dtype {array.dtype}")
    array = np.ascontiguousarray(array)
    header = json.dumps({"dtype": array.dtype.str, "shape": list(array.shape)}).encode("ascii")
    return struct.pack("<I", len(header)) + header + array.tobytes(order="C")


def _array_from_body(body: bytes, offset: int = 0) -> tuple[np.ndarray, int]:
    try:
        (hlen,) = struct.unpack_from("<I", body, offset)
        header = json.loads(body[offset + 4: offset + 4 + hlen].decode("ascii"))
        dtype = np.dtype(str(header["dtype"]))
        shape = tuple(int(s) for s in header["shape"])
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptEntry(f"bad array header: {exc}") from None
    if dtype.hasobject or dtype.fields is not None or any(s < 0 for s in shape):
        raise CorruptEntry(f"refusing array dtype {dtype} / shape {shape}")
    start = offset + 4 + hlen
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if start + nbytes > len(body):
        raise CorruptEntry("array buffer shorter than its header says")
    array = np.frombuffer(body, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)), offset=start)
    return array.reshape(shape).copy(), start + nbytes


def encode_array(array: np.ndarray) -> bytes:
    """Envelope for one numeric array: JSON header (dtype, shape) + raw C-order buffer."""
    return _envelope(_KIND_ARRAY, _array_body(array))


def decode_array(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_array`; raises :class:`CorruptEntry`."""
    body = _open_envelope(blob, _KIND_ARRAY)
    array, end = _array_from_body(body)
    if end != len(body):
        raise CorruptEntry("trailing bytes after array")
    return array


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Envelope for a dict of named arrays (e.g. a teacher's bands and attention maps)."""
    names = sorted(arrays)
    index = json.dumps(names).encode("utf-8")
    body = struct.pack("<I", len(index)) + index + b"".join(_array_body(arrays[n]) for n in names)
    return _envelope(_KIND_ARRAYS, body)


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`; raises :class:`CorruptEntry`."""
    body = _open_envelope(blob, _KIND_ARRAYS)
    try:
        (ilen,) = struct.unpack_from("<I", body, 0)
        names = json.loads(body[4: 4 + ilen].decode("utf-8"))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("index is not a list of names")
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise CorruptEntry(f"bad array index: {exc}") from None
    out, pos = {}, 4 + ilen
    for name in names:
        out[name], pos = _array_from_body(body, pos)
    if pos != len(body):
        raise CorruptEntry("trailing bytes after arrays")
    return out


def content_key(*parts: Any) -> str:
    """sha256 hex digest of ``parts`` in order.

    ``bytes`` are hashed as is, numpy arrays as dtype + shape + C-order bytes, anything else as canonical
    JSON (sorted keys).  Each part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            tag, data = b"b", bytes(part)
        elif isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            tag = b"a"
            data = f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()
        else:
            tag = b"j"
            data = json.dumps(part, sort_keys=True, separators=(",", ":"), default=json_default).encode("utf-8")
        h.update(tag + struct.pack("<Q", len(data)) + data)
    return h.hexdigest()


# --------------------------------------------------------------------------- diskcache layer
class SafeDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores only ``bytes`` under ``str`` keys and never unpickles.

    Entries stored by anyone else in pickle (or text) mode are handed back as a rejection marker, which
    :class:`SafeCache` deletes and treats as a miss.
    """

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"SafeCache keys must be str, not {type(key).__name__}")
        return super().put(key)

    def get(self, key, raw):
        if not raw:  # a pickled key planted by someone else: never unpickle it
            return _REJECTED
        return super().get(key, raw)

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not bytes:
            raise TypeError(f"SafeCache stores bytes only, not {type(value).__name__}")
        return super().store(value, False, key=key)

    def fetch(self, mode, filename, value, read):
        if read or mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            return _REJECTED
        data = super().fetch(mode, filename, value, False)
        if type(data) is not bytes:  # MODE_RAW also holds ints/floats/str written by plain diskcache
            return _REJECTED
        return data


#: What a damaged cache folder can raise from diskcache/SQLite: a corrupt database page, a settings row
#: whose bytes no longer decode, a value file that vanished or cannot be written.
_BROKEN = (sqlite3.Error, OSError, UnicodeError, ValueError, TypeError, KeyError)


class SafeCache:
    """Namespaced JSON / array cache over diskcache that never pickles.

    >>> cache = SafeCache(tmp_dir)
    >>> cache.put_json("narratives", key, {"text": "..."})
    >>> cache.get_json("narratives", key)          # None when missing, corrupt or unsafe

    Thread-safe (diskcache keeps one SQLite connection per thread) and process-safe (SQLite locking).
    """

    def __init__(self, directory: str | os.PathLike, size_limit: int = 2 ** 34, timeout: float = 60.0):
        self.directory = Path(directory)
        self._size_limit, self._timeout = int(size_limit), float(timeout)
        try:
            self._cache = diskcache.Cache(str(self.directory), disk=SafeDisk, timeout=timeout,
                                          size_limit=size_limit, eviction_policy="least-recently-stored")
        except _BROKEN as exc:
            raise DataError(f"cannot open the cache ({type(exc).__name__}: {exc}); delete the folder to rebuild it",
                            path=self.directory) from None

    # -- plumbing
    @staticmethod
    def _key(namespace: str, key: str) -> str:
        if not namespace or "/" in namespace:
            raise ValueError(f"bad namespace {namespace!r} (non-empty, no '/')")
        return f"{namespace}/{key}"

    def _get_blob(self, full_key: str) -> bytes | None:
        try:
            blob = self._cache.get(full_key, default=None, retry=True)
        except _BROKEN as exc:
            log.warning("cache read failed for %s: %s", full_key, exc)
            return None
        if blob is _REJECTED:
            log.warning("cache entry %s is not in the safe format (pickle/text); deleting it unread", full_key)
            self._delete(full_key)
            return None
        return blob

    def _delete(self, full_key: str) -> None:
        with contextlib.suppress(*_BROKEN):
            self._cache.delete(full_key, retry=True)

    def _decode(self, full_key: str, decoder):
        blob = self._get_blob(full_key)
        if blob is None:
            return None
        try:
            return decoder(blob)
        except CorruptEntry as exc:
            log.warning("cache entry %s is corrupt (%s); deleting it", full_key, exc)
            self._delete(full_key)
            return None

    def _put(self, full_key: str, blob: bytes) -> None:
        try:
            self._cache.set(full_key, blob, retry=True)
        except _BROKEN as exc:  # a damaged index or a full disk: one clear error, never a half-written entry
            raise DataError(f"cannot write to the cache ({type(exc).__name__}: {exc}); free space or delete the "
                            f"folder to rebuild it", path=self.directory) from None

    # -- public API
    def get_json(self, namespace: str, key: str) -> Any | None:
        """The JSON value stored under ``namespace/key``, or ``None``."""
        return self._decode(self._key(namespace, key), decode_json)

    def put_json(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (dicts, lists, str, numbers, bools, None)."""
        self._put(self._key(namespace, key), encode_json(value))

    def get_array(self, namespace: str, key: str) -> np.ndarray | None:
        """The array stored under ``namespace/key``, or ``None``."""
        return self._decode(self._key(namespace, key), decode_array)

    def put_array(self, namespace: str, key: str, array: np.ndarray) -> None:
        """Store one plain numeric array (dtype and shape kept)."""
        self._put(self._key(namespace, key), encode_array(array))

    def get_arrays(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        """The dict of named arrays stored under ``namespace/key``, or ``None``."""
        return self._decode(self._key(namespace, key), decode_arrays)

    def put_arrays(self, namespace: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store several named arrays as one entry (all or nothing)."""
        self._put(self._key(namespace, key), encode_arrays(arrays))

    def contains(self, namespace: str, key: str) -> bool:
        """Whether an entry exists (not validated: use a ``get_*`` to validate)."""
        try:
            return self._key(namespace, key) in self._cache
        except _BROKEN:
            return False

    def delete(self, namespace: str, key: str) -> None:
        self._delete(self._key(namespace, key))

    def keys(self, namespace: str) -> Iterator[str]:
        """Keys (without the namespace) stored in ``namespace``."""
        prefix = f"{namespace}/"
        try:
            for full in self._cache.iterkeys():
                if isinstance(full, str) and full.startswith(prefix):
                    yield full[len(prefix):]
        except _BROKEN as exc:
            log.warning("cache index unreadable while listing %s: %s", namespace, exc)

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> "SafeCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # A SafeCache handed to another process (e.g. inside a DataLoader dataset) travels as its settings
    # only and reopens the folder there; no cached value is ever pickled.
    def __getstate__(self) -> dict:
        return {"directory": str(self.directory), "size_limit": self._size_limit, "timeout": self._timeout}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["directory"], size_limit=int(state["size_limit"]), timeout=float(state["timeout"]))
