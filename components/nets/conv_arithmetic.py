"""Convolution arithmetic: output sizes from input, kernel, stride, padding and dilation.

The formulas are those of Dumoulin & Visin, "A guide to convolution arithmetic for deep learning",
in the general form that PyTorch documents for ``Conv2d`` and ``ConvTranspose2d``:

    conv:       out = floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1
    transposed: out = (in − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1

Each argument is an int or a (height, width) pair; the result has the shape of the inputs (an int
when every argument is an int). Networks in adl size their linear layers with these, so a wrong
input size fails at construction with a message rather than deep inside a forward pass.
"""

from __future__ import annotations

IntOr2 = int | tuple[int, int]


def _pair(x: IntOr2, name: str) -> tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    if isinstance(x, tuple | list) and len(x) == 2 and all(isinstance(v, int) for v in x):
        return (int(x[0]), int(x[1]))
    raise TypeError(f"{name} must be an int or a pair of ints, got {x!r}")


def _any_pair(*args: IntOr2) -> bool:
    return any(not isinstance(a, int) for a in args)


def conv_output_size(
    size: IntOr2, kernel: IntOr2, stride: IntOr2 = 1, padding: IntOr2 = 0, dilation: IntOr2 = 1
) -> IntOr2:
    """Spatial output size of a convolution (or pooling) layer."""
    dims = [
        _pair(a, n)
        for a, n in (
            (size, "size"),
            (kernel, "kernel"),
            (stride, "stride"),
            (padding, "padding"),
            (dilation, "dilation"),
        )
    ]
    out = []
    for i, k, s, p, d in zip(*dims):
        if s < 1 or d < 1 or p < 0 or k < 1:
            raise ValueError(
                f"need kernel ≥ 1, stride ≥ 1, dilation ≥ 1, padding ≥ 0; got k={k} s={s} d={d} p={p}"
            )
        o = (i + 2 * p - d * (k - 1) - 1) // s + 1
        if o < 1:
            raise ValueError(
                f"input {i} is too small for kernel {k} (dilation {d}) with padding {p}: output {o}"
            )
        out.append(o)
    result = (out[0], out[1])
    return result if _any_pair(size, kernel, stride, padding, dilation) else result[0]


def conv_transpose_output_size(
    size: IntOr2,
    kernel: IntOr2,
    stride: IntOr2 = 1,
    padding: IntOr2 = 0,
    output_padding: IntOr2 = 0,
    dilation: IntOr2 = 1,
) -> IntOr2:
    """Spatial output size of a transposed convolution."""
    dims = [
        _pair(a, n)
        for a, n in (
            (size, "size"),
            (kernel, "kernel"),
            (stride, "stride"),
            (padding, "padding"),
            (output_padding, "output_padding"),
            (dilation, "dilation"),
        )
    ]
    out = []
    for i, k, s, p, op, d in zip(*dims):
        if op >= max(s, d):
            raise ValueError(f"output_padding {op} must be smaller than stride {s} or dilation {d}")
        o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        if o < 1:
            raise ValueError(f"transposed conv output would be {o} for input {i}")
        out.append(o)
    result = (out[0], out[1])
    return result if _any_pair(size, kernel, stride, padding, output_padding, dilation) else result[0]


def conv_stack_output_size(size: IntOr2, layers: list[tuple[int, int, int]]) -> IntOr2:
    """Output size after a stack of (kernel, stride, padding) convolutions."""
    for kernel, stride, padding in layers:
        size = conv_output_size(size, kernel, stride, padding)
    return size
