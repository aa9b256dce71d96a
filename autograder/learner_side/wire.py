"""Plain-data encoding of check inputs and outputs between processes.

Values cross the boundary between the trusted grader and the learner's worker
as JSON: tensors as dtype, shape and raw bytes (base64), generators as their
state bytes. Decoding never runs code (no pickle) and rebuilds plain
``torch.Tensor`` objects, whatever subclass the learner's code returned.
"""
from __future__ import annotations

import base64
import math
from typing import Any

import torch

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)}

# Bounds of what :func:`decode` accepts: data beyond them is not one of our encodings.
MAX_DEPTH = 20      # nesting of lists and dicts
MAX_ITEMS = 4096    # items of one list or dict
MAX_STRING = 4096   # characters of a string or a dict key (a tensor's data is bounded by its shape)
MAX_DIMS = 16       # dimensions of a tensor
MAX_SIZE = 2**40    # size of one dimension


class WireError(ValueError):
    """A value that cannot be encoded, or data that is not a valid encoding."""


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value`` (tensors, generators, numbers, strings,
    None, and lists, tuples and str-keyed dicts of them)."""
    if isinstance(value, torch.Tensor):
        t = torch.Tensor.as_subclass(value, torch.Tensor).detach().cpu().contiguous()
        name = str(t.dtype).removeprefix("torch.")
        if name not in DTYPES:
            raise WireError(f"unsupported dtype {t.dtype}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return {"__tensor__": {"dtype": name, "shape": list(t.shape), "data": base64.b64encode(data).decode()}}
    if isinstance(value, torch.Generator):
        return {"__generator__": base64.b64encode(value.get_state().numpy().tobytes()).decode()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    raise WireError(f"cannot send a {type(value).__name__}")


def decode(data: Any, depth: int = 0) -> Any:
    """The value that :func:`encode` encoded (lists become tuples).

    ``data`` is untrusted parsed JSON: anything that is not an encoding, or
    exceeds the bounds above, raises WireError and nothing else.
    """
    if depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, str):
        return _string(data)
    if isinstance(data, list):
        _count(data)
        return tuple(decode(v, depth + 1) for v in data)
    if isinstance(data, dict) and len(data) == 1:
        (tag, body), = data.items()
        if tag == "__tensor__":
            return _tensor(body)
        if tag == "__generator__":
            return _generator(body)
        if tag == "__float__" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "__dict__" and isinstance(body, dict):
            _count(body)
            return {_string(k): decode(v, depth + 1) for k, v in body.items()}
    raise WireError(f"not a valid encoding (a {type(data).__name__})")


def _string(text: str) -> str:
    """``text`` if it is short and valid Unicode (no lone surrogate, which
    would fail wherever the grader writes it)."""
    if len(text) > MAX_STRING:
        raise WireError(f"a string of {len(text)} characters (at most {MAX_STRING})")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError("a string that is not valid Unicode") from None
    return text


def _count(items) -> None:
    if len(items) > MAX_ITEMS:
        raise WireError(f"{len(items)} items in one list or dict (at most {MAX_ITEMS})")


def _generator(body: Any) -> torch.Generator:
    try:
        state = torch.frombuffer(bytearray(base64.b64decode(body, validate=True)), dtype=torch.uint8)
        return torch.Generator().set_state(state.clone())
    except (TypeError, ValueError, RuntimeError) as exc:  # not base64, or not a generator's state
        raise WireError(f"not a valid generator state ({type(exc).__name__})") from None


def _tensor(body: Any) -> torch.Tensor:
    if not (isinstance(body, dict) and set(body) == {"dtype", "shape", "data"}):
        raise WireError("not a valid tensor (expected dtype, shape and data)")
    dtype, shape, data = body["dtype"], body["shape"], body["data"]
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise WireError(f"not a valid tensor (dtype: one of {', '.join(DTYPES)})")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS
            and all(type(n) is int and 0 <= n <= MAX_SIZE for n in shape)):
        raise WireError(f"not a valid tensor (shape: a list of at most {MAX_DIMS} sizes in [0, 2**40])")
    if not isinstance(data, str):
        raise WireError("not a valid tensor (data is not a string)")
    dtype, numel = DTYPES[dtype], math.prod(shape)
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise WireError("tensor data is not base64") from None
    if len(raw) != numel * torch.empty(0, dtype=dtype).element_size():
        raise WireError("tensor data does not match its shape and dtype")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
