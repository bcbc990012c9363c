"""Reading fields of a collection into arrays, in chunks, at any size.

One cursor streams the ids and the requested fields; vectors are decoded
batch by batch straight into one preallocated float32 matrix (never a list of
per-sample arrays), with the decompression in worker threads.
"""

import io
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..core import params
from . import internals
from .targets import is_vector_field

_BATCH = 4096
_IN_FLIGHT = 4
_DECODERS = max(1, min(2, os.cpu_count() or 1))


@dataclass
class VectorTable:
    """Vectors of the samples that have every requested field; ids of those that do not."""

    ids: np.ndarray  # object array of bson ObjectIds, one per row of vectors
    vectors: np.ndarray  # (n, d) float32
    missing_ids: np.ndarray  # ObjectIds of samples lacking a vector
    fields: list

    def __len__(self):
        return len(self.ids)


def _db_path(collection, path):
    return internals.db_field(collection, path)


def _get(doc, path):
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _cursor(collection, paths):
    project = {p: True for p in paths} or {"_id": True}
    return internals.aggregate(collection, [{"$project": project}])


def hidden_field_message(collection, name, param):
    """The error for a field that exists on the dataset but not in this view."""
    root = internals.root_dataset(collection)
    if root.get_field(name) is not None or (
        internals.is_frames(collection) and root.get_frame_field_schema().get(name) is not None
    ):
        return (
            f"{param}: field '{name}' exists on dataset '{root.name}' but this view "
            "excludes it (select_fields/exclude_fields); include it in the view"
        )
    return None


def check_vector_fields(collection, fields, param="embeddings_field"):
    """Validates a field name or list of names; returns the list."""
    fields = params.strings(param, fields, "vector field names") if fields else []
    if not fields:
        raise ValueError(f"{param} is required: name one or more vector fields")
    if len(set(fields)) != len(fields):
        raise ValueError(f"{param} lists a field twice: {fields}")
    schema = collection.get_field_schema(flat=True)
    available = sorted(n for n, f in schema.items() if is_vector_field(f))
    for name in fields:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{param} must name vector fields, got {name!r}")
        field = schema.get(name)
        if field is None:
            hidden = hidden_field_message(collection, name, param)
            raise ValueError(
                hidden
                or f"{param}: field '{name}' does not exist; vector fields available: {available or 'none'} "
                "(compute embeddings first)"
            )
        if not is_vector_field(field):
            raise ValueError(
                f"{param}: '{name}' is a {type(field).__name__}, not a vector field; "
                f"vector fields available: {available or 'none'}"
            )
    return fields


class _Corrupt(Exception):
    """A stored value that is not a vector: its position in the batch and why."""

    def __init__(self, index, reason):
        super().__init__(reason)
        self.index = index


def _inflate(index, value):
    try:
        return zlib.decompress(value)
    except (zlib.error, TypeError) as error:
        raise _Corrupt(index, f"zlib: {error}") from None


class _Decoder:
    """Decodes one field's values (serialized numpy arrays or lists) into matrix rows."""

    def __init__(self, name):
        self.name = name
        self.dim = None
        self.layouts = {}
        self.lock = threading.Lock()  # batches are decoded in parallel

    def _layout(self, raw):
        """(header length, dtype, size) of a serialized 1-D numpy array, cached per header."""
        if raw[:6] == b"\x93NUMPY" and raw[6:7] == b"\x01":
            header = raw[: 10 + int.from_bytes(raw[8:10], "little")]
        else:  # other npy versions: parse every time (never written by FiftyOne today)
            header = None
        layout = self.layouts.get(header) if header is not None else None
        if layout is None:
            try:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
            except Exception as error:  # noqa: BLE001 - any unreadable payload is a corrupt vector
                raise _Corrupt(0, f"not a numpy array: {error}"[:200]) from None
            layout = (len(raw) - arr.nbytes, arr.dtype, arr.size)
            if header is not None:
                self.layouts[header] = layout
        return header, layout

    def rows(self, values):
        """An (n, d) float32 array from n non-None values."""
        if not isinstance(values[0], (bytes, bytearray)):
            for i, v in enumerate(values):
                if not isinstance(v, (list, tuple)):
                    raise _Corrupt(i, f"a {type(v).__name__} where a vector goes")
            lengths = {len(v) for v in values}
            if len(lengths) > 1:
                self._ragged(sorted(lengths))
            self._check_dim(lengths.pop())
            return np.asarray(values, dtype=np.float32)
        raws = [_inflate(i, v) for i, v in enumerate(values)]
        header, (offset, dtype, size) = self._layout(raws[0])
        self._check_dim(size)
        width = len(raws[0])
        if header is not None and all(len(r) == width for r in raws):
            block = np.frombuffer(b"".join(raws), np.uint8).reshape(len(raws), width)
            if (block[:, : len(header)] == np.frombuffer(header, np.uint8)).all():
                return block[:, offset:].copy().view(dtype).astype(np.float32, copy=False)
        out = np.empty((len(raws), size), np.float32)  # mixed layouts: one by one
        for i, raw in enumerate(raws):
            try:
                _, (offset, dtype, size_i) = self._layout(raw)
            except _Corrupt as error:
                raise _Corrupt(i, str(error)) from None
            self._check_dim(size_i)
            if len(raw) - offset != size_i * dtype.itemsize:
                raise _Corrupt(i, f"{len(raw) - offset} bytes where {size_i * dtype.itemsize} go")
            out[i] = np.frombuffer(raw, dtype=dtype, offset=offset)
        return out

    def _check_dim(self, size):
        with self.lock:
            if self.dim is None:
                self.dim = size
            elif size != self.dim:
                self._ragged([self.dim, size])

    def _ragged(self, lengths):
        raise ValueError(
            f"embeddings_field: '{self.name}' holds vectors of different lengths {lengths}; "
            "recompute the embeddings with one model"
        )


def read_vectors(collection, fields, *, standardize=False, columns=False, progress=None):
    """Reads one or more vector fields of a collection into an (n, d) float32 matrix.

    With ``columns`` the matrix is column-major (Fortran order), so a
    column-wise consumer such as the ZCore engine needs no second copy.

    Fields are concatenated in the given order. Samples missing any of them
    are left out and their ids returned. With ``standardize`` each field is
    centred and divided by one scalar (its RMS after centring), so that one
    model's scale does not dominate the concatenation.
    """
    fields = check_vector_fields(collection, fields)
    paths = [_db_path(collection, f) for f in fields]
    total = collection.count()
    decoders = [_Decoder(f) for f in fields]
    blocks = [None] * len(fields)
    ids = np.empty(total, dtype=object)
    missing = []
    state = dict(rows=0)

    allocate = threading.Lock()

    def decode(start, batch):
        for k, decoder in enumerate(decoders):
            try:
                rows = decoder.rows([values[k] for values in batch])
            except _Corrupt as error:
                raise ValueError(
                    f"embeddings_field: the vector stored in '{decoder.name}' of sample {ids[start + error.index]} "
                    f"is corrupt ({error}); clear it (sample['{decoder.name}'] = None) and recompute it, or "
                    "exclude that sample from the view"
                ) from None
            with allocate:
                if blocks[k] is None:
                    blocks[k] = np.empty((total, rows.shape[1]), np.float32, order="F" if columns else "C")
            blocks[k][start : start + len(rows)] = rows

    # zlib and numpy release the GIL: the decoders run beside the cursor's BSON decoding
    with ThreadPoolExecutor(_DECODERS) as pool:
        pending = []
        batch, batch_ids = [], []
        seen = 0

        def flush():
            start = state["rows"]
            ids[start : start + len(batch_ids)] = batch_ids
            state["rows"] += len(batch_ids)
            pending.append(pool.submit(decode, start, list(batch)))
            batch.clear()
            batch_ids.clear()
            while len(pending) > _IN_FLIGHT:
                pending.pop(0).result()

        nested = any("." in p for p in paths)
        for doc in _cursor(collection, paths):
            values = [_get(doc, p) for p in paths] if nested else [doc.get(p) for p in paths]
            seen += 1
            if None in values:
                missing.append(doc["_id"])
                continue
            batch.append(values)
            batch_ids.append(doc["_id"])
            if len(batch) >= _BATCH:
                flush()
                if progress is not None:
                    progress(min(1.0, seen / max(total, 1)))
        if batch:
            flush()
        for future in pending:
            future.result()

    num = state["rows"]
    ids = ids[:num]
    parts = []
    for name, block in zip(fields, blocks):
        block = np.empty((0, 0), np.float32) if block is None else block[:num]
        _check_finite(block, ids, name)
        if standardize and num:
            block -= block.mean(axis=0, dtype=np.float64).astype(np.float32)
            block /= max(float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))), 1e-12)
        parts.append(block)
    if len(parts) == 1:
        vectors = parts[0]
    elif columns:
        vectors = np.concatenate([p.T for p in parts], axis=0).T if num else np.empty((0, 0), np.float32)
    else:
        vectors = np.concatenate(parts, axis=1) if num else np.empty((0, 0), np.float32)
    return VectorTable(ids, vectors, np.asarray(missing, dtype=object), fields)


def _check_finite(block, ids, name, step=65536):
    for start in range(0, len(block), step):
        finite = np.isfinite(block[start : start + step]).all(axis=1)
        if not finite.all():
            bad = [str(i) for i in ids[start : start + step][~finite][:3]]
            count = sum(
                int((~np.isfinite(block[s : s + step]).all(axis=1)).sum()) for s in range(start, len(block), step)
            )
            raise ValueError(
                f"embeddings_field: '{name}' has NaN or inf values in {count} samples (e.g. {', '.join(bad)}); "
                "recompute those embeddings or exclude them from the view"
            )


def read_columns(collection, paths):
    """Reads scalar fields of every sample: (ids, {path: list of values})."""
    db_paths = [_db_path(collection, p) for p in paths]
    ids = []
    columns = {p: [] for p in paths}
    for doc in _cursor(collection, db_paths):
        ids.append(doc["_id"])
        for path, db_path in zip(paths, db_paths):
            columns[path].append(_get(doc, db_path))
    return np.asarray(ids, dtype=object), columns
