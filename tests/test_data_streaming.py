"""Streaming loaders: folders of images, .npy/.npz arrays, mnist14, the spec parser, and the
clear errors each gives for bad input (missing, empty, mixed sizes, wrong dtype/range,
truncated files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncmle_prob.data import (
    ArrayDataset,
    DataFileError,
    DatasetNotFoundError,
    ImageFolder,
    downsample_levels,
    load_dataset,
    load_mnist,
    parse_spec,
    split_indices,
    to_grid,
)


def _images(folder: Path, n: int, size: tuple[int, int] = (6, 5), mode: str = "L",
            seed: int = 0) -> list[np.ndarray]:
    """Writes n random PNGs of (height, width) ``size``; returns their pixel arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shape = size if mode == "L" else (*size, 3)
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(a, mode).save(folder / f"img{i:03d}.png")
        out.append(a)
    return out


def test_folder_streams_exact_pixels_and_split(tmp_path: Path) -> None:
    arrays = _images(tmp_path, 23)
    train = load_dataset(f"folder:{tmp_path}")
    test = load_dataset(f"folder:{tmp_path}", split="test")
    # every tenth image (index 9, 19) is a test image; the rest train, in sorted file order
    assert len(train) == 21 and len(test) == 2 and train.bins == 256 and train.name == "folder"
    assert train.event_shape == (1, 6, 5) and not hasattr(train, "data")  # nothing cached
    expected = to_grid(torch.from_numpy(arrays[19]).long(), 255, 256)
    assert torch.equal(test[1][0], expected)  # PNG is lossless: exact grid values
    assert torch.equal(train[[0, 9]], torch.stack([
        to_grid(torch.from_numpy(arrays[i]).long(), 255, 256)[None] for i in (0, 10)]))
    coarse = load_dataset(f"folder:{tmp_path}", bins=4)
    levels = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])  # float32 grid values of bins=4
    assert torch.isin(coarse.tensor(), levels).all()
    flat = load_dataset(f"folder:{tmp_path}", flatten=True)
    assert flat.event_shape == (30,) and torch.equal(flat[3], train[3].flatten())


def test_folder_train_test_subfolders_colour_and_sizes(tmp_path: Path) -> None:
    _images(tmp_path / "train" / "cats", 4, size=(10, 8), mode="RGB")
    _images(tmp_path / "test", 2, size=(10, 8), mode="RGB", seed=1)
    tr = load_dataset(f"folder:{tmp_path}")
    assert len(tr) == 4 and tr.event_shape == (3, 10, 8)  # RGB inferred, recursive listing
    te = load_dataset(f"folder:{tmp_path}", split="test", channels=1, size=4)
    assert len(te) == 2 and te.event_shape == (1, 4, 4) and te[0].shape == (1, 4, 4)
    crop = ImageFolder(tmp_path / "test", size=(2, 2), resize="crop")
    # a centre crop keeps the exact pixels of rows 4-5 and columns 3-4
    src = np.array(Image.open(sorted((tmp_path / "test").glob("*.png"))[0]))
    want = to_grid(torch.from_numpy(src[4:6, 3:5]).long().permute(2, 0, 1), 255, 256)
    assert torch.equal(crop[0], want)
    assert ImageFolder(tmp_path / "test", size=(4, 8), resize="crop_resize")[1].shape == (3, 4, 8)


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"image folder .*nope does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataFileError, match=r"no images in .*empty"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    mixed = tmp_path / "mixed"
    _images(mixed, 2, size=(6, 5))
    Image.new("L", (7, 7)).save(mixed / "odd.png")
    with pytest.raises(DataFileError, match=r"different sizes .*img000.png is 6x5.*odd.png is "
                       r"7x7.*pass size="):
        load_dataset(f"folder:{mixed}")
    assert len(load_dataset(f"folder:{mixed}", size=(6, 5))) == 3  # a resize makes it fine
    with pytest.raises(DataFileError, match=r"img000.png is 6x5, smaller than the crop 6x6"):
        load_dataset(f"folder:{mixed}", size=6, resize="crop")
    bad = tmp_path / "bad"
    _images(bad, 2)
    (bad / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataFileError, match=r"junk.png is not a readable image"):
        load_dataset(f"folder:{bad}")
    trunc = tmp_path / "trunc"
    _images(trunc, 3)
    raw = (trunc / "img001.png").read_bytes()
    (trunc / "img001.png").write_bytes(raw[: len(raw) // 2])  # header intact, pixels cut
    ds = load_dataset(f"folder:{trunc}")  # headers only: opens fine...
    assert ds[0].shape == (1, 6, 5)
    with pytest.raises(DataFileError, match=r"img001.png cannot be decoded \(truncated"):
        ds[1]  # ...and the truncated file fails loudly when read
    with pytest.raises(DataFileError, match=r"img001.png is not a readable image"):
        ImageFolder(trunc, verify=True)  # or up front
    with pytest.raises(ValueError, match="too few for a test split"):
        load_dataset(f"folder:{trunc}", split="test")


def test_npy_memory_mapped_layouts_and_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)  # channel-last
    np.save(tmp_path / "x.npy", levels)
    ds = load_dataset(f"npy:{tmp_path / 'x.npy'}")
    assert isinstance(ds.array, np.memmap)  # rows are read from disk on access
    assert len(ds) == 27 and ds.event_shape == (3, 4, 4) and ds.bins == 256
    want = to_grid(torch.from_numpy(levels[[0, 10, 5]]).long().permute(0, 3, 1, 2), 255, 256)
    assert torch.equal(ds[[0, 9, 5]], want)  # train rows 0, 10 (index 9 is test), 5
    grid = (2 * rng.integers(0, 5, (20, 3)) / 4 - 1).astype(np.float32)  # 5-level float grid
    np.savez(tmp_path / "v.npz", train=grid[:15], test=grid[15:])
    vec = load_dataset(f"npy:{tmp_path / 'v.npz'}", split="test", bins=5)
    assert len(vec) == 5 and vec.event_shape == (3,)
    assert torch.equal(vec.tensor(), torch.from_numpy(grid[15:]))
    cont = ArrayDataset(tmp_path / "v.npz", split="train")  # floats without bins: continuous
    assert cont.bins is None and len(cont) == 15


def test_npy_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"array file .*missing.npy does not exist"):
        load_dataset(f"npy:{tmp_path / 'missing.npy'}")
    np.save(tmp_path / "big.npy", np.full((12, 2, 2), 300, dtype=np.int16))
    with pytest.raises(DataFileError, match=r"big.npy holds integer values in \[300, 300\]"):
        load_dataset(f"npy:{tmp_path / 'big.npy'}")
    np.save(tmp_path / "range.npy", np.full((12, 2), 1.5, dtype=np.float32))
    with pytest.raises(DataFileError, match=r"range.npy holds values in \[1.5, 1.5\]"):
        load_dataset(f"npy:{tmp_path / 'range.npy'}", bins=256)
    np.save(tmp_path / "off.npy", np.full((12, 2), 0.1, dtype=np.float32))
    with pytest.raises(DataFileError, match=r"off.npy has values off the grid of bins=3"):
        load_dataset(f"npy:{tmp_path / 'off.npy'}", bins=3)
    nan = np.zeros((12, 2), dtype=np.float32)
    nan[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataFileError, match=r"nan.npy has NaN/inf values \(first in example 7"):
        load_dataset(f"npy:{tmp_path / 'nan.npy'}")
    np.save(tmp_path / "str.npy", np.array([["a", "b"]] * 12))
    with pytest.raises(DataFileError, match=r"str.npy has dtype <U1"):
        load_dataset(f"npy:{tmp_path / 'str.npy'}")
    np.save(tmp_path / "ok.npy", np.zeros((12, 1, 4, 4), dtype=np.uint8))
    raw = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-10])
    with pytest.raises(DataFileError, match=r"cut.npy is not a readable \(complete\)"):
        load_dataset(f"npy:{tmp_path / 'cut.npy'}")
    np.savez(tmp_path / "ok.npz", a=np.zeros((12, 2), dtype=np.uint8))
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:-30])
    with pytest.raises(DataFileError, match=r"cut.npz is not a readable"):
        load_dataset(f"npy:{tmp_path / 'cut.npz'}")
    np.savez(tmp_path / "two.npz", a=np.zeros((12, 2)), b=np.zeros((12, 2)))
    with pytest.raises(DataFileError, match=r"two.npz holds arrays \['a', 'b'\]; name one"):
        load_dataset(f"npy:{tmp_path / 'two.npz'}")
    np.save(tmp_path / "shape.npy", np.zeros((12, 2, 2, 2, 2), dtype=np.uint8))
    with pytest.raises(DataFileError, match=r"shape.npy has shape \(12, 2, 2, 2, 2\)"):
        load_dataset(f"npy:{tmp_path / 'shape.npy'}")


def test_mnist14_is_2x2_average_requantised(tmp_path: Path, fake_mnist) -> None:
    train = fake_mnist(tmp_path, n_train=12, n_test=3, compress_test=True, extremes=False)
    small = load_dataset("mnist14", data_dir=tmp_path)
    assert small.name == "mnist14" and small.event_shape == (1, 14, 14) and small.bins == 256
    assert len(small) == 12 and len(load_dataset("mnist14", data_dir=tmp_path, split="test")) == 3
    # the oracle: block sums by numpy, rounded half up: floor((s + 2) / 4)
    s = train.reshape(12, 14, 2, 14, 2).sum(axis=(2, 4))
    want = to_grid(torch.from_numpy((s + 2) // 4).long(), 255, 256)
    assert torch.equal(small.tensor()[:, 0], want)
    assert torch.equal(downsample_levels(torch.tensor([[1, 2], [2, 1]])), torch.tensor([[2]]))
    assert torch.equal(downsample_levels(torch.tensor([[1, 1], [1, 0]])), torch.tensor([[1]]))
    assert load_mnist(tmp_path, size=14).image_shape == (1, 14, 14)
    full = load_dataset("mnist", data_dir=tmp_path, split="all")
    assert len(full) == 15 and full.event_shape == (1, 28, 28)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())[:-7]))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz holds .* expected"):
        load_dataset("mnist", data_dir=tmp_path)  # truncated IDX: refused, nothing returned


def test_spec_parser_and_option_errors(tmp_path: Path) -> None:
    assert parse_spec("folder:a/b") == ("folder", Path("a/b"))
    assert parse_spec("fashion-mnist") == ("fashion_mnist", None)
    with pytest.raises(ValueError, match=r"unknown data spec 'cifar10'; choose from .*folder:PATH"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="a prefix must be 'folder:' or 'npy:'"):
        load_dataset("zip:x.zip")
    with pytest.raises(ValueError, match="needs a path after folder:"):
        load_dataset("folder:")
    with pytest.raises(ValueError, match="digits images are 8x8; size=16"):
        load_dataset("digits", size=16)
    with pytest.raises(ValueError, match=r"digits is greyscale .* channels=3"):
        load_dataset("digits", channels=3)
    with pytest.raises(ValueError, match="split must be one of train, test, all"):
        load_dataset("digits", split="val")
    toy = load_dataset("rings", split="test")
    assert toy.bins is None and toy.event_shape == (2,) and len(toy) == 2000
    digits = load_dataset("digits", split="all")
    assert len(digits) == 1797 and digits.bins == 17
    assert split_indices(20, "test") == [9, 19]
