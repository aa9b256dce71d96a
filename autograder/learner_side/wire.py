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
    """The value that :func:`encode` encoded; raises WireError on anything else."""
    if depth > 20:
        raise WireError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return tuple(decode(v, depth + 1) for v in data)
    if isinstance(data, dict) and len(data) == 1:
        (tag, body), = data.items()
        if tag == "__tensor__":
            return _tensor(body)
        if tag == "__generator__":
            state = torch.frombuffer(bytearray(base64.b64decode(body, validate=True)), dtype=torch.uint8)
            return torch.Generator().set_state(state.clone())
        if tag == "__float__" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "__dict__" and isinstance(body, dict):
            return {str(k): decode(v, depth + 1) for k, v in body.items()}
    raise WireError("not a valid encoding")


def _tensor(body: Any) -> torch.Tensor:
    try:
        dtype = DTYPES[body["dtype"]]
        shape = [int(n) for n in body["shape"]]
        raw = base64.b64decode(body["data"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a valid tensor ({exc})") from None
    if any(n < 0 for n in shape):
        raise WireError("negative size")
    numel = math.prod(shape)
    if len(raw) != numel * torch.empty(0, dtype=dtype).element_size():
        raise WireError("tensor data does not match its shape and dtype")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
