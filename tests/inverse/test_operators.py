"""Measurement operators: the matrix-free SVD pieces reconstruct A and its adjoint exactly.

Every check is in float64 and expects agreement to 1e-10 (the pieces are permutations, QR bases, FFTs
or one LAPACK SVD: their round-off is ~1e-15 on these sizes), and bad input is refused by name.
"""

import pytest
import torch

from sdeflow.inverse.operators import Blur, Denoising, Inpainting, Linear, Nonlinear, SuperResolution, gaussian_kernel

TOL = 1e-10


def _operators():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand((2, 4, 4), generator=g) > 0.5
    return [
        (Denoising(0.1), (2, 3)),
        (Inpainting(mask, noise_std=0.05), (2, 4, 4)),
        (SuperResolution(2), (2, 4, 6)),
        (SuperResolution(3), (6,)),
        (Blur(gaussian_kernel(3, 1.0)), (2, 5, 6)),
        (Blur(torch.rand(3, generator=g, dtype=torch.float64)), (7,)),  # an asymmetric kernel: complex phases
        (Linear(torch.randn(3, 5, generator=g, dtype=torch.float64)), (5,)),  # wide: rank 3 of 5
        (Linear(torch.randn(7, 5, generator=g, dtype=torch.float64)), (5,)),  # tall: y has a noise-only part
    ]


@pytest.mark.parametrize("op,shape", _operators(), ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else str(v))
def test_svd_pieces_reconstruct_A_and_adjoint(op, shape):
    op = op.bind(shape)
    D = op.dim
    A = op.matrix()  # (M, D) from forward on the identity
    M = A.shape[0]
    # A = U diag(s) V^T, column by column: A e_j = U(s * Vt(e_j)).
    eye = torch.eye(D, dtype=torch.float64).reshape((D,) + shape)
    coef = op.Vt(eye)
    s = op.singulars
    assert s.shape == (D,) and bool((s >= 0).all())
    A_svd = op.U(s.to(coef.dtype) * coef).reshape(D, M).T
    assert float((A_svd - A).abs().max()) < TOL
    # A^T = V diag(s) U^T, row by row, and the dedicated adjoint agrees.
    eye_m = torch.eye(M, dtype=torch.float64).reshape((M,) + op.measurement_shape)
    ut = op.Ut(eye_m)
    At_svd = op.V(s.to(ut.dtype) * ut).reshape(M, D)
    assert float((At_svd - A).abs().max()) < TOL
    assert float((op.adjoint(eye_m).reshape(M, D) - A).abs().max()) < TOL
    # V is orthogonal: V(Vt(x)) = x and ||Vt x|| = ||x||.
    x = torch.randn((4,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert float((op.V(op.Vt(x)) - x).abs().max()) < TOL
    assert float((op.Vt(x).abs().norm(dim=1) - x.reshape(4, -1).norm(dim=1)).abs().max()) < TOL


def test_noise_and_measure():
    op = Denoising(0.5, event_shape=(3,))
    x = torch.zeros((20000, 3), dtype=torch.float64)
    y = op.measure(x, generator=torch.Generator().manual_seed(0))
    # the std of 60,000 standard normals times 0.5: 0.5 within 5 standard errors (0.5 / sqrt(2 * 60000) ~ 1.4e-3)
    assert abs(float(y.std()) - 0.5) < 5 * 0.5 / (2 * 60000) ** 0.5


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="noise_std"):
        Denoising(-0.1)
    with pytest.raises(TypeError, match="mask"):
        Inpainting(torch.ones(3, 3))
    with pytest.raises(ValueError, match="factor"):
        SuperResolution(0)
    with pytest.raises(ValueError, match="divisible"):
        SuperResolution(2, event_shape=(1, 5, 4))
    op = Linear(torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have shape"):
        op.forward(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="y must have shape"):
        op.adjoint(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="A must be"):
        Linear([[1.0, 2.0]])
    nl = Nonlinear(lambda x: x**2, noise_std=0.1, event_shape=(3,))
    with pytest.raises(TypeError, match="no SVD"):
        nl.Vt(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="no adjoint"):
        nl.adjoint(torch.zeros(1, 3))
