from __future__ import annotations

import itertools

import pytest
import torch

from components.nets.conv_arithmetic import (
    conv_output_size,
    conv_stack_output_size,
    conv_transpose_output_size,
)


def test_worked_examples():
    assert conv_output_size(7, kernel=3, stride=2, padding=1) == 4
    assert conv_output_size(7, kernel=3) == 5
    assert conv_output_size((7, 9), kernel=3, stride=2, padding=1) == (4, 5)
    # Nature DQN: 84 → 20 → 9 → 7
    assert conv_stack_output_size(84, [(8, 4, 0), (4, 2, 0), (3, 1, 0)]) == 7


@pytest.mark.parametrize(
    "size,kernel,stride,padding,dilation",
    [
        c
        for c in itertools.product([5, 8, 13], [1, 2, 3, 5], [1, 2, 3], [0, 1, 2], [1, 2])
        if c[0] + 2 * c[3] - c[4] * (c[1] - 1) - 1 >= 0
    ],
)
def test_matches_torch_conv2d_and_transposed(size, kernel, stride, padding, dilation):
    x = torch.zeros(1, 1, size, size + 1)
    conv = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert tuple(conv(x).shape[-2:]) == conv_output_size((size, size + 1), kernel, stride, padding, dilation)
    for output_padding in range(0, max(stride, dilation)):
        if padding * 2 > (size - 1) * stride + dilation * (kernel - 1) + output_padding:
            continue
        tconv = torch.nn.ConvTranspose2d(
            1, 1, kernel, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
        )
        expected = conv_transpose_output_size(
            (size, size + 1), kernel, stride, padding, output_padding, dilation
        )
        assert tuple(tconv(x).shape[-2:]) == expected


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="too small"):
        conv_output_size(2, kernel=5)
    with pytest.raises(ValueError, match="stride"):
        conv_output_size(8, kernel=3, stride=0)
    with pytest.raises(TypeError, match="pair of ints"):
        conv_output_size((8, 8, 8), kernel=3)  # type: ignore[arg-type]
