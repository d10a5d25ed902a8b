"""TensorFlow checkpoint V2 ("tensor bundle") reader: numpy and the standard library, no TensorFlow.

A bundle is `PREFIX.index`, an SSTable (LevelDB table) mapping tensor names to BundleEntryProtos,
and `PREFIX.data-0000s-of-0000n`, the raw little-endian tensor bytes. Every block and every
tensor carries a masked CRC32C, checked here: a damaged download is an error, never wrong weights.
The format is described in ../shared/pretrained/musicnn-golden/README.md. Reading only parses
bytes; nothing from the file is executed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import GenreError
from .crc32c import crc32c, masked

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48

#: tensorflow/core/framework/types.proto DataType -> numpy
DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


class CheckpointError(GenreError):
    """A checkpoint that is not a readable, intact TF V2 bundle."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes lie and what they hold."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int


@dataclass(frozen=True)
class Index:
    tensors: dict[str, TensorInfo]
    num_shards: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(msg: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value, pos = msg[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            value, pos = msg[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = msg[pos : pos + 4], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        if pos > len(msg):
            raise CheckpointError("truncated protobuf message")
        yield number, value


def _block(buf: bytes, offset: int, size: int) -> bytes:
    """One SSTable block after its CRC check (block bytes + compression byte)."""
    if offset + size + 5 > len(buf):
        raise CheckpointError("index block runs past the end of the file")
    kind = buf[offset + size]
    (stored,) = struct.unpack_from("<I", buf, offset + size + 1)
    if masked(crc32c(memoryview(buf)[offset : offset + size + 1])) != stored:
        raise CheckpointError("index block CRC mismatch")
    if kind != 0:
        raise CheckpointError(f"compressed index block (type {kind}) is not supported")
    return buf[offset : offset + size]


def _entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Key/value pairs of a block; keys are prefix-compressed against the previous one."""
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def _handle(value: bytes) -> tuple[int, int]:
    offset, pos = _varint(value, 0)
    size, _ = _varint(value, pos)
    return offset, size


def _shape(msg: bytes) -> tuple[int, ...]:
    dims = []
    for number, dim in _fields(msg):
        if number == 2 and isinstance(dim, bytes):
            size = dict(_fields(dim)).get(1, 0)
            dims.append(int(size) if isinstance(size, int) else 0)
    return tuple(dims)


def _number(f: dict[int, int | bytes], field: int, what: str) -> int:
    value = f.get(field, 0)
    if not isinstance(value, int):
        raise CheckpointError(f"{what}: protobuf field {field} is not a number")
    return value


def _entry(name: str, msg: bytes) -> TensorInfo:
    f: dict[int, int | bytes] = dict(_fields(msg))
    if 7 in f:
        raise CheckpointError(f"{name}: sliced tensors are not supported")
    code = _number(f, 1, name)
    if code not in DTYPES:
        raise CheckpointError(f"{name}: unsupported dtype {code}")
    crc, shape = f.get(6, b"\0\0\0\0"), f.get(2, b"")
    if not isinstance(crc, bytes) or len(crc) != 4 or not isinstance(shape, bytes):
        raise CheckpointError(f"{name}: malformed checkpoint entry")
    return TensorInfo(
        name=name,
        dtype=np.dtype(DTYPES[code]).newbyteorder("<"),
        shape=_shape(shape),
        shard=_number(f, 3, name),
        offset=_number(f, 4, name),
        size=_number(f, 5, name),
        crc=struct.unpack("<I", crc)[0],
    )


def read_index(buf: bytes) -> Index:
    """Every tensor's name, dtype, shape and location, from the bytes of `PREFIX.index`."""
    if len(buf) < _FOOTER or struct.unpack_from("<Q", buf, len(buf) - 8)[0] != _MAGIC:
        raise CheckpointError("not a TensorFlow checkpoint index (no SSTable footer)")
    footer = buf[-_FOOTER:]
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    raw: dict[str, bytes] = {}
    for _, handle in _entries(_block(buf, index_off, index_size)):
        for key, value in _entries(_block(buf, *_handle(handle))):
            raw[key.decode("utf-8")] = value
    if "" not in raw:
        raise CheckpointError("checkpoint index has no bundle header")
    header = dict(_fields(raw.pop("")))
    if header.get(2, 0) != 0:
        raise CheckpointError("big-endian checkpoints are not supported")
    tensors = {name: _entry(name, value) for name, value in raw.items()}
    shards = header.get(1, 1)
    if not isinstance(shards, int):
        raise CheckpointError("checkpoint header: num_shards is not a number")
    return Index(tensors, shards)


def read_tensors(
    index: bytes, shard: Callable[[int, int], bytes], names: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """The tensors `names` (all if None), each checked against its CRC.

    `shard(i, n)` returns the bytes of data file i of n (`PREFIX.data-0000i-of-0000n`).
    """
    idx = read_index(index)
    wanted = idx.tensors if names is None else {n: idx.tensors[n] for n in names if n in idx.tensors}
    missing = set(names or ()) - set(wanted)
    if missing:
        raise CheckpointError(f"checkpoint lacks {len(missing)} tensor(s), e.g. {sorted(missing)[0]}")
    shards: dict[int, bytes] = {}
    out = {}
    for name, info in sorted(wanted.items()):
        if info.shard not in shards:
            shards[info.shard] = shard(info.shard, idx.num_shards)
        data = memoryview(shards[info.shard])[info.offset : info.offset + info.size]
        count = int(np.prod(info.shape, dtype=np.int64))
        if len(data) != info.size or info.size != count * info.dtype.itemsize:
            raise CheckpointError(f"{name}: data file is truncated or the entry is inconsistent")
        if masked(crc32c(data)) != info.crc:
            raise CheckpointError(f"{name}: tensor CRC mismatch (damaged data file)")
        out[name] = (
            np.frombuffer(data, dtype=info.dtype).reshape(info.shape).astype(info.dtype.newbyteorder("="))
        )
    return out


def shard_name(i: int, n: int) -> str:
    """The suffix of data file i of n, as TensorFlow names it."""
    return f".data-{i:05d}-of-{n:05d}"
