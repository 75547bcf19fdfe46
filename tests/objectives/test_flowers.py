"""The flowers CNN: image data, cache, split, each regularizer, and a tiny study via the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import Result

from hpsearch.errors import DataError
from hpsearch.objectives._data import cache_dir, image_splits, load_image_set, scan_image_folder
from hpsearch.objectives._flowers import (
    GaussianNoise,
    ResidualBlock,
    augment_batch,
    build_cnn,
    colour_jitter,
)
from hpsearch.objectives._train import FitConfig, fit, make_optimizer
from hpsearch.spec import DataSpec

CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")
SMALL = DataSpec(dataset="flowers", image_size=32)


@pytest.fixture
def flowers_copy(tmp_path: Path, mnist_dir: Path) -> Path:
    """A private copy of the committed real flower subset, safe to modify."""
    root = tmp_path / "data"
    for cls in CLASSES:
        target = root / "flowers" / cls
        target.mkdir(parents=True)
        for src in sorted((mnist_dir / "flowers" / cls).iterdir())[:12]:
            (target / src.name).write_bytes(src.read_bytes())
    return root


def cached_files() -> set[Path]:
    """The decoded-image cache files that exist now."""
    return set(cache_dir().glob("flowers-*.pt"))


def test_loads_real_images_with_a_stratified_split(mnist_dir: Path) -> None:
    data = load_image_set(DataSpec(dataset="flowers", image_size=32), mnist_dir)
    assert data.classes == CLASSES
    assert data.images.shape == (200, 3, 32, 32) and data.images.dtype == torch.uint8
    parts = [set(p.tolist()) for p in (data.train_idx, data.valid_idx, data.test_idx)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 200
    for idx, share in ((data.valid_idx, 0.15), (data.test_idx, 0.15)):
        counts = torch.bincount(data.labels[idx], minlength=5).tolist()
        assert counts == [round(40 * share)] * 5  # every class in the same proportion
    again = load_image_set(DataSpec(dataset="flowers", image_size=32), mnist_dir)
    assert torch.equal(again.test_idx, data.test_idx)


def test_normalized_with_train_statistics(mnist_dir: Path) -> None:
    splits = image_splits(SMALL, mnist_dir, torch.device("cpu"))
    per_channel = splits.x_train.mean(dim=(0, 2, 3))
    assert per_channel.abs().max() < 1e-4
    assert splits.x_train.std(dim=(0, 2, 3)).sub(1).abs().max() < 1e-3
    assert splits.x_valid.mean(dim=(0, 2, 3)).abs().max() > 1e-4  # not re-centred on itself


def test_cache_is_built_once_reused_and_rebuilt_on_change(flowers_copy: Path) -> None:
    before = cached_files()
    first = load_image_set(SMALL, flowers_copy)
    built = cached_files() - before
    assert len(built) == 1
    (cache,) = built
    stamp = cache.stat().st_mtime_ns
    second = load_image_set(SMALL, flowers_copy)
    assert cached_files() - before == {cache} and cache.stat().st_mtime_ns == stamp
    assert torch.equal(first.images, second.images)
    # Another size is another cache entry.
    load_image_set(DataSpec(dataset="flowers", image_size=16), flowers_copy)
    assert len(cached_files() - before) == 2
    # Changing a file (new content, new mtime) rebuilds.
    victim = next((flowers_copy / "flowers" / "rose").iterdir())
    donor = next((flowers_copy / "flowers" / "tulip").iterdir())
    victim.write_bytes(donor.read_bytes())
    os.utime(victim, ns=(stamp + 10**9, stamp + 10**9))
    changed = load_image_set(SMALL, flowers_copy)
    assert len(cached_files() - before) == 3
    assert not torch.equal(changed.images, first.images)


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no class sub-folders"):
        scan_image_folder(tmp_path / "empty")
    (tmp_path / "tree" / "rose").mkdir(parents=True)
    (tmp_path / "tree" / "tulip").mkdir()
    (tmp_path / "tree" / "rose" / "a.jpg").write_bytes(b"x")
    (tmp_path / "tree" / "tulip" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*tulip has no images"):
        scan_image_folder(tmp_path / "tree")


def test_a_class_too_small_to_split_is_named(flowers_copy: Path) -> None:
    for extra in sorted((flowers_copy / "flowers" / "tulip").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DataError, match="class 'tulip' has only 1 images, too few to split"):
        load_image_set(SMALL, flowers_copy)


def test_unreadable_image_is_named(flowers_copy: Path) -> None:
    bad = flowers_copy / "flowers" / "daisy" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff this is not really a jpeg")
    with pytest.raises(DataError) as info:
        load_image_set(SMALL, flowers_copy)
    assert f"cannot read image {bad}" in str(info.value)


# ------------------------------------------------------------------ the model and its regularizers


def test_cnn_layout() -> None:
    model = build_cnn((6, 12, 24), 5, batch_norm=True, dropout=0.2, noise_std=0.1)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:6] == [
        "ChannelsLast",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "GaussianNoise",
        "MaxPool2d",
    ]
    assert kinds.count("Conv2d") == 3 and kinds.count("MaxPool2d") == 2
    assert "AdaptiveAvgPool2d" in kinds and kinds[-2:] == ["Dropout", "Linear"]
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 5)


def test_two_convs_per_block_before_each_pool() -> None:
    model = build_cnn((6, 12, 24), 5, True, 0.0, 0.1, convs_per_block=2)
    kinds = [type(m).__name__ for m in model]
    first_pool = kinds.index("MaxPool2d")
    assert kinds[1:first_pool] == ["Conv2d", "BatchNorm2d", "ReLU", "GaussianNoise"] * 2
    assert kinds.count("Conv2d") == 6 and kinds.count("MaxPool2d") == 2
    widths = [(m.in_channels, m.out_channels) for m in model if isinstance(m, torch.nn.Conv2d)]
    assert widths == [(3, 6), (6, 6), (6, 12), (12, 12), (12, 24), (24, 24)]
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 5)


def test_residual_blocks_add_the_projected_input_to_the_convs() -> None:
    model = build_cnn((6, 12), 5, True, 0.0, 0.1, convs_per_block=2, residual=True).eval()
    blocks = [m for m in model if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2 and model(torch.randn(4, 3, 32, 32)).shape == (4, 5)
    block = blocks[0]
    kinds = [type(m).__name__ for m in block.body]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "GaussianNoise", "Conv2d", "BatchNorm2d"]
    x = torch.randn(4, 3, 16, 16)
    expected = torch.relu(block.body(x) + block.shortcut(x))
    assert torch.allclose(block(x), expected, atol=1e-6)  # noise is off in eval
    torch.nn.init.zeros_(block.body[-1].weight)  # silence the convs: only the skip path is left
    assert torch.allclose(block(x), torch.relu(block.shortcut(x)), atol=1e-6)
    same = ResidualBlock(6, 6, False, 0.0, 2, 1)
    assert isinstance(same.shortcut, torch.nn.Identity)  # no projection when shapes match


def test_stem_stride_halves_the_first_convs_output() -> None:
    model = build_cnn((6, 12, 24), 5, True, 0.0, 0.0, convs_per_block=2, stem_stride=2)
    strides = [m.stride for m in model if isinstance(m, torch.nn.Conv2d)]
    assert strides == [(2, 2)] + [(1, 1)] * 5
    seen: list[tuple[int, ...]] = []
    model[1].register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    assert seen == [(2, 6, 32, 32)]


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_norm": True}, {"dropout": 0.5}, {"noise_std": 0.5}],
    ids=["batch_norm", "dropout", "noise"],
)
def test_regularizer_acts_in_train_and_not_in_eval(kwargs: dict[str, object]) -> None:
    options = {"batch_norm": False, "dropout": 0.0, "noise_std": 0.0, **kwargs}
    torch.manual_seed(0)
    model = build_cnn((6, 12, 24), 5, **options)  # type: ignore[arg-type]
    x = torch.randn(16, 3, 32, 32)
    model.train()
    first, second = model(x), model(x[:8])
    assert not torch.allclose(first[:8], second, atol=1e-5)  # batch stats or fresh randomness
    model.eval()
    assert torch.allclose(model(x)[:8], model(x[:8]), atol=1e-5)
    if not options["batch_norm"]:
        torch.manual_seed(0)
        plain = build_cnn((6, 12, 24), 5, batch_norm=False, dropout=0.0, noise_std=0.0).eval()
        assert torch.allclose(model(x), plain(x), atol=1e-6)  # same weights, no regularizer


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_noise_is_standard_normal_with_the_inputs_shape_and_layout(
    layout: torch.memory_format,
) -> None:
    torch.manual_seed(0)
    x = torch.zeros(32, 8, 16, 16).contiguous(memory_format=layout)
    layer = GaussianNoise(0.5).train()
    noisy = layer(x)
    assert noisy.shape == x.shape and noisy.is_contiguous(memory_format=layout)
    assert abs(noisy.mean().item()) < 0.01 and abs(noisy.std().item() - 0.5) < 0.01
    # i.i.d. across channels and positions: no structure left by the dense buffer's order
    per_channel = noisy.std(dim=(0, 2, 3))
    assert per_channel.min() > 0.45 and per_channel.max() < 0.55
    assert not torch.equal(layer(x), noisy)  # fresh noise on every call


@pytest.mark.parametrize("penalty", ["l1", "weight_decay"])
@pytest.mark.slow
def test_weight_penalties_change_the_update(penalty: str, mnist_dir: Path) -> None:
    splits = image_splits(SMALL, mnist_dir, torch.device("cpu"))
    weights = []
    for strength in (0.0, 0.05):
        torch.manual_seed(0)
        model = build_cnn((6, 12, 24), 5, batch_norm=False, dropout=0.0, noise_std=0.0)
        decay = strength if penalty == "weight_decay" else 0.0
        l1 = strength if penalty == "l1" else 0.0
        optimizer = make_optimizer("sgd", model.parameters(), 0.05, decay, 0.0)
        fit(model, optimizer, splits, FitConfig(1, 32, 5, seed=0, l1=l1), lambda s: None)
        weights.append(model[1].weight.detach().abs().sum().item())
    assert weights[1] < weights[0]


@pytest.mark.parametrize(("zoom", "low", "high"), [(0.0, 0.97, 1.01), (0.5, 0.70, 0.80)])
def test_zoom_magnifies_by_up_to_its_fraction(zoom: float, low: float, high: float) -> None:
    torch.manual_seed(0)
    ramp = torch.linspace(-1, 1, 64).expand(200, 3, 64, 64)  # value = horizontal position
    out = augment_batch(ramp.contiguous(), zoom=zoom)[:, :, 16:48, 16:48]  # clear of borders
    slope = (out[..., 1:] - out[..., :-1]).abs().mean() / (2 / 63)  # 1 where nothing zooms
    assert low < float(slope) < high


def test_colour_jitter_varies_each_images_colour_not_its_layout() -> None:
    torch.manual_seed(0)
    flat = torch.rand(200, 3, 1, 1).expand(200, 3, 8, 8).contiguous()  # one colour per image
    out = colour_jitter(flat, 0.3)
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))  # still one colour per image
    assert not torch.allclose(out, flat)
    assert (out - flat).abs().max() < 0.3 + 0.3 * 2  # factors within 1 ± 0.3, values within 0..1
    torch.manual_seed(0)
    plain = augment_batch(flat)
    torch.manual_seed(0)
    assert torch.equal(augment_batch(flat, jitter=0.0), plain)  # no extra draw when off


@pytest.mark.parametrize("option", ["mixup", "cutmix"])
@pytest.mark.slow
def test_mixing_raises_the_training_loss_and_leaves_validation_plain(
    mnist_dir: Path, option: str
) -> None:
    splits = image_splits(SMALL, mnist_dir, torch.device("cpu"))
    losses, scored = [], []
    for alpha in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_cnn((6, 12, 24), 5, batch_norm=True, dropout=0.0, noise_std=0.0)
        model.register_forward_pre_hook(
            lambda m, args: None if m.training else scored.append(args[0].clone())
        )
        optimizer = make_optimizer("adam", model.parameters(), 3e-3, 0.0, 0.9)
        cfg = FitConfig(20, 32, 100, seed=0, **{option: alpha})
        losses.append(fit(model, optimizer, splits, cfg, lambda s: None).history[-1].train_loss)
    assert losses[1] > losses[0] + 0.15  # blended targets: a higher floor (about +0.3)
    assert len(scored) == 40 and all(torch.equal(x, splits.x_valid) for x in scored)


@pytest.mark.slow
def test_augment_changes_batches_only_while_training(mnist_dir: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    out = augment_batch(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    splits = image_splits(SMALL, mnist_dir, torch.device("cpu"))
    calls: list[int] = []

    def spy(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        return augment_batch(batch)

    model = build_cnn((6, 12, 24), 5, batch_norm=False, dropout=0.0, noise_std=0.0)
    optimizer = make_optimizer("adam", model.parameters(), 1e-3, 0.0, 0.9)
    fit(model, optimizer, splits, FitConfig(2, 32, 5, seed=0), lambda s: None, augment=spy)
    assert sum(calls) == 2 * len(splits.x_train)  # every training image, never a validation one


# ------------------------------------------------------------------ through the CLI


@pytest.mark.slow
def test_tiny_flowers_study_via_cli(
    cli: Callable[..., Result], make_study: Callable[..., Path], storage_url: str
) -> None:
    text = (
        "seed = 1\n[data]\ndataset = 'flowers'\nimage_size = 32\n[training]\nmax_epochs = 2\n"
        "[search]\nlr = { low = 1e-3, high = 1e-2, log = true }\n"
        "batch_norm = { choices = [true, false] }\naugment = { choices = [true, false] }\n"
        "noise_std = { low = 0.0, high = 0.3 }\ndropout = { low = 0.0, high = 0.5, step = 0.1 }\n"
        "l1 = { low = 1e-6, high = 1e-4, log = true }\n"
        "[sampler]\nkind = 'random'\n[pruner]\nkind = 'none'\n"
    )
    study = make_study(name="flowers-tiny", text=text)
    result = cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="flowers-tiny", storage=storage_url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert all("dropout" in t.params for t in trials)  # independent of BatchNorm for the CNN
    assert all(len(t.user_attrs["history"]) == 2 for t in trials)


def test_missing_flowers_folder_via_cli(
    cli: Callable[..., Result], make_study: Callable[..., Path], storage_url: str
) -> None:
    text = "[data]\ndataset = 'flowers'\nfolder = 'no-such-folder'\n[search]\n"
    study = make_study(name="flowers-missing", text=text)
    result = cli("run", "--study", str(study), "--trials", "1", "--storage", storage_url)
    assert result.exit_code == 1
    assert "no-such-folder does not exist" in result.output and "Traceback" not in result.output


def test_mnist_rejects_flowers_keys(make_study: Callable[..., Path]) -> None:
    from hpsearch.errors import SpecError
    from hpsearch.spec import load_spec

    bad = make_study(name="x", text="[search]\naugment = { choices = [true, false] }\n")
    with pytest.raises(SpecError, match=r"search\.augment is not used by the mnist objective"):
        load_spec(str(bad))
    bad = make_study(name="y", text="[data]\nimage_size = 32\n")
    with pytest.raises(SpecError, match=r"data\.image_size does not apply to 'mnist'"):
        load_spec(str(bad))
    bad = make_study(name="w", text="[model]\nflip_average = true\n")
    with pytest.raises(SpecError, match=r"model\.flip_average does not apply to 'mnist'"):
        load_spec(str(bad))
    bad = make_study(name="z", text="[model]\nconvs_per_block = 2\n")
    with pytest.raises(SpecError, match=r"model\.convs_per_block does not apply to 'mnist'"):
        load_spec(str(bad))


def test_study_file_sets_convs_per_block(make_study: Callable[..., Path]) -> None:
    from hpsearch.errors import SpecError
    from hpsearch.objectives._flowers import build
    from hpsearch.spec import load_spec

    text = "[data]\ndataset = 'flowers'\n[model]\nchannels = [4, 8]\nconvs_per_block = {n}\n"
    spec = load_spec(str(make_study(name="two", text=text.format(n=2))))
    model = build(spec, spec.training, 5)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model) == 4
    with pytest.raises(SpecError, match=r"model\.convs_per_block must be ≥ 1 but got 0"):
        load_spec(str(make_study(name="zero", text=text.format(n=0))))


def test_flip_average_scores_both_orientations_only_in_eval() -> None:
    torch.manual_seed(0)
    plain = build_cnn((4, 8), 5, True, 0.0, 0.0)
    averaged = build_cnn((4, 8), 5, True, 0.0, 0.0, flip_average=True)
    averaged.load_state_dict(plain.state_dict())  # same parameters, same names
    x = torch.randn(6, 3, 16, 16)
    for mode in (True, False):
        plain.train(mode)
        averaged.train(mode)
        expected = plain(x) if mode else (plain(x) + plain(x.flip(3))) / 2
        assert torch.allclose(averaged(x), expected, atol=1e-6)
    assert not torch.allclose(plain(x), averaged(x), atol=1e-4)  # eval: the mirror counts
    assert torch.allclose(averaged(x), averaged(x.flip(3)), atol=1e-6)  # mirror-invariant


def test_study_file_sets_flip_average(make_study: Callable[..., Path]) -> None:
    from hpsearch.objectives._flowers import FlipAveraged, build
    from hpsearch.spec import load_spec

    text = "[data]\ndataset = 'flowers'\n[model]\nchannels = [4, 8]\nflip_average = {v}\n"
    for value, kind in (("true", FlipAveraged), ("false", torch.nn.Sequential)):
        spec = load_spec(str(make_study(name=value, text=text.format(v=value))))
        assert type(build(spec, spec.training, 5)) is kind


def test_full_flowers_set(full_data_dir: Path) -> None:
    data = load_image_set(DataSpec(dataset="flowers", image_size=32), full_data_dir)
    assert torch.bincount(data.labels).tolist() == [764, 1052, 784, 733, 984]
    assert len(data.test_idx) == sum(round(n * 0.15) for n in (764, 1052, 784, 733, 984))


def test_study_file_sets_residual_blocks_and_stem_stride(make_study: Callable[..., Path]) -> None:
    from hpsearch.errors import SpecError
    from hpsearch.objectives._flowers import build
    from hpsearch.spec import load_spec

    text = "[data]\ndataset = 'flowers'\n[model]\nchannels = [4, 8]\n{extra}\n"
    spec = load_spec(str(make_study(name="res", text=text.format(extra="residual = true"))))
    assert sum(isinstance(m, ResidualBlock) for m in build(spec, spec.training, 5)) == 2
    spec = load_spec(str(make_study(name="stem", text=text.format(extra="stem_stride = 2"))))
    convs = [m for m in build(spec, spec.training, 5).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1)]
    with pytest.raises(SpecError, match=r"model\.stem_stride must be ≥ 1 but got 0"):
        load_spec(str(make_study(name="s0", text=text.format(extra="stem_stride = 0"))))
    bad = make_study(name="mnist-res", text="[model]\nresidual = true\n")
    with pytest.raises(SpecError, match=r"model\.residual does not apply to 'mnist'"):
        load_spec(str(bad))


@pytest.mark.slow
def test_searched_mixup_reaches_the_training_loop(
    make_study: Callable[..., Path], mnist_dir: Path
) -> None:
    from hpsearch.objectives._builtin import classifier_for
    from hpsearch.objectives._runner import run_trial
    from hpsearch.spec import load_spec

    text = (
        "[data]\ndataset = 'flowers'\nimage_size = 32\n[model]\nchannels = [6, 12, 24]\n"
        "[training]\nmax_epochs = 20\npatience = 100\nlr = 3e-3\nbatch_size = 32\n"
        "batch_norm = true\n[search]\nmixup = { choices = [0.0, 1.0] }\n"
    )
    spec = load_spec(str(make_study(name="mix", text=text)))
    final = []
    for alpha in (0.0, 1.0):
        trial = optuna.trial.FixedTrial({"mixup": alpha})
        function = classifier_for(spec).objective
        run_trial(trial, spec, function, mnist_dir, torch.device("cpu"))  # type: ignore[arg-type]
        final.append(trial.user_attrs["history"][-1]["train_loss"])
    assert final[1] > final[0] + 0.15  # blended targets keep the training loss up


def test_mixup_must_not_be_negative(make_study: Callable[..., Path]) -> None:
    from hpsearch.errors import SpecError
    from hpsearch.spec import load_spec

    bad = make_study(name="neg", text="[search]\nmixup = { low = -0.1, high = 0.4 }\n")
    with pytest.raises(SpecError, match=r"search\.mixup\.low must be ≥ 0 but got -0\.1"):
        load_spec(str(bad))
