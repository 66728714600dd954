"""Data: toys from a seed with their known moments, the digits split and classifier, user files and their errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdeflow.data import TOYS, digits_classifier, get_data, load_digits, load_file_data, sample_toy


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toys_are_deterministic_from_the_seed(name):
    a, b, c = sample_toy(name, 500, seed=3), sample_toy(name, 500, seed=3), sample_toy(name, 500, seed=4)
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_toy_moments_match_their_definitions():
    n = 200_000
    # 8 Gaussians: mean 0, E|x|^2 = scale^2 + 2 sqrt(var) = 25 + 2 sqrt(0.1) (covariance sqrt(var) I).
    x = sample_toy("8gaussians", n, seed=0).double()
    assert float(x.mean(0).abs().max()) < 0.05
    assert float(x.pow(2).sum(1).mean()) == pytest.approx(25 + 2 * math.sqrt(0.1), rel=0.01)
    # Moons: 3 (moon point + u (1, 1)) - 1; E[outer moon] = (0, 2/pi), E[inner] = (1, 1/2 - 2/pi),
    # E[u] = 0.1, so E[x] = 3 ((1/2, 1/4) + 0.1) - 1 = (0.8, 0.05).
    m = sample_toy("moons", n, seed=0).double().mean(0)
    assert torch.allclose(m, torch.tensor([0.8, 0.05], dtype=torch.float64), atol=0.02)
    # Checkerboard: uniform on 8 of 16 squares of [-4, 4]^2: mean 0, E x_i^2 = 16/3, on dark squares only.
    cb = sample_toy("checkerboard", n, seed=0).double()
    assert float(cb.mean(0).abs().max()) < 0.03
    assert float(cb.pow(2).mean()) == pytest.approx(16 / 3, rel=0.01)
    sq = torch.floor((cb + 4) / 2).long()
    assert bool(((sq[:, 0] + sq[:, 1]) % 2 == 0).all())
    # Circles: radii 4 and 2 with equal mass: E|x|^2 = (16 + 4)/2 + 2 noise^2.
    ci = sample_toy("circles", n, seed=0).double()
    assert float(ci.pow(2).sum(1).mean()) == pytest.approx(10 + 2 * 0.08**2, rel=0.01)


def test_moons_are_drawn_as_torchdyn_draws_them():
    # Without the diagonal shift (noise=0) every point lies on its moon: (n // 2) on the unit circle
    # (outer) and the rest on the unit circle around (1, 1/2) (inner), each moon's angles exactly
    # linspace(0, pi, count) (stratified, as in Tong et al.'s benchmark), in a shuffled order.
    n = 1001
    x = ((sample_toy("moons", n, seed=3, noise=0.0).double() + 1.0) / 3.0).numpy()
    outer = np.abs(np.hypot(x[:, 0], x[:, 1]) - 1.0) < 1e-6
    inner = np.abs(np.hypot(x[:, 0] - 1.0, x[:, 1] - 0.5) - 1.0) < 1e-6
    assert outer.sum() == n // 2 and inner.sum() == n - n // 2 and not (outer & inner).any()
    theta_out = np.sort(np.arctan2(x[outer, 1], x[outer, 0]))
    theta_in = np.sort(np.arctan2(0.5 - x[inner, 1], 1.0 - x[inner, 0]))
    np.testing.assert_allclose(theta_out, np.linspace(0, np.pi, n // 2), atol=1e-6)
    np.testing.assert_allclose(theta_in, np.linspace(0, np.pi, n - n // 2), atol=1e-6)
    assert not outer[: n // 2].all()  # shuffled: the outer moon is not the first half
    # The shift is along the diagonal, u ~ U(0, noise): x - y is unchanged by it.
    y = ((sample_toy("moons", n, seed=3).double() + 1.0) / 3.0).numpy()
    assert np.allclose(np.sort(y[:, 0] - y[:, 1]), np.sort(x[:, 0] - x[:, 1]), atol=1e-6)


def test_digits_split_and_range():
    train, test, full = load_digits("train"), load_digits("test"), load_digits("all")
    assert train.images.shape == (1438, 1, 8, 8) and test.images.shape == (359, 1, 8, 8) and full.images.shape[0] == 1797
    assert float(full.images.min()) == -1.0 and float(full.images.max()) == 1.0
    # Stratified: every class is 20% held out (rounded).
    counts = torch.bincount(test.labels, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37
    # Disjoint: no held-out image equals a training image at the same position of the full set.
    assert torch.equal(load_digits("test").images, test.images)  # deterministic
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")


def test_shipped_digits_classifier_recognizes_held_out_digits():
    # The feature space of the Frechet distance: the shipped classifier labels >= 95% of the held-out
    # digits correctly (98% when it was trained), and its features are 64-wide.
    clf = digits_classifier()
    test = load_digits("test")
    with torch.no_grad():
        acc = float((clf(test.images).argmax(-1) == test.labels).float().mean())
        assert clf.features(test.images).shape == (359, 64)
    assert acc >= 0.95
    with pytest.raises(ValueError, match="digits must have shape"):
        clf(torch.zeros(2, 10))


def test_user_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", vec)
    got = load_file_data(tmp_path / "v.npy")
    assert got.kind == "vector" and torch.equal(got.x, torch.from_numpy(vec)) and got.labels is None
    labels = rng.integers(0, 4, size=50)
    np.savez(tmp_path / "v.npz", x=vec, y=labels)
    got = load_file_data(tmp_path / "v.npz")
    assert torch.equal(got.labels, torch.from_numpy(labels))
    torch.save({"data": torch.from_numpy(vec), "labels": torch.from_numpy(labels)}, tmp_path / "v.pt")
    got = load_file_data(tmp_path / "v.pt")
    assert torch.equal(got.x, torch.from_numpy(vec)) and torch.equal(got.labels, torch.from_numpy(labels))
    # Images: uint8 channels-last -> (n, C, H, W) in [-1, 1]; floats in [0, 1] -> 2 v - 1.
    img = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "i.npy", img)
    got = load_file_data(tmp_path / "i.npy")
    assert got.kind == "image" and got.x.shape == (6, 3, 4, 4)
    assert torch.allclose(got.x, torch.from_numpy(img.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1)
    np.save(tmp_path / "f.npy", np.full((3, 8, 8), 0.25, dtype=np.float32))
    assert torch.allclose(load_file_data(tmp_path / "f.npy").x, torch.full((3, 1, 8, 8), -0.5))
    # A folder of images, read with Pillow.
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.full((8, 6), 40 * k, dtype=np.uint8), mode="L").save(folder / f"{k}.png")
    got = load_file_data(folder)
    assert got.x.shape == (3, 1, 8, 6) and float(got.x[2, 0, 0, 0]) == pytest.approx(80 / 127.5 - 1)
    # get_data standardizes user vector files and stores the map back.
    src = get_data(tmp_path / "v.npy")
    assert torch.allclose(src.x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(src.to_data_space(src.x), torch.from_numpy(vec), atol=1e-5)


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file_data(tmp_path / "missing.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read"):
        load_file_data(tmp_path / "bad.npy")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_file_data(tmp_path / "data.csv")
    np.save(tmp_path / "range.npy", np.full((4, 8, 8), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match="must lie in"):
        load_file_data(tmp_path / "range.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        load_file_data(tmp_path / "nan.npy")
    np.save(tmp_path / "one.npy", np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        load_file_data(tmp_path / "one.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="which array"):
        load_file_data(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="no array named"):
        load_file_data(tmp_path / "two.npz", key="c")
    np.savez(tmp_path / "lab.npz", x=np.zeros((3, 2)), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="labels must have shape"):
        load_file_data(tmp_path / "lab.npz")
    np.save(tmp_path / "layout.npy", np.zeros((3, 5, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="4-D array"):
        load_file_data(tmp_path / "layout.npy")
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(folder / "b.png")
    with pytest.raises(ValueError, match="differs"):
        load_file_data(folder)
    (folder / "b.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match="not a readable image"):
        load_file_data(folder)
    with pytest.raises(ValueError, match="unknown data"):
        get_data("no-such-dataset")
    with pytest.raises(ValueError, match="normalize"):
        get_data("moons", normalize="zscore")
    with pytest.raises(ValueError, match="unknown toy"):
        sample_toy("spiral3", 5)
