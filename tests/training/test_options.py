"""Options declared once: TrainOptions, the ownership checks, the defaults and the help all
come from the declarations."""

from __future__ import annotations

import dataclasses

import pytest

import mlx_generative as mg
from mlx_generative.cli.train import setup_arg_parser
from mlx_generative.errors import UsageError
from mlx_generative.families import FAMILIES
from mlx_generative.training.options import (
    OPTIONS,
    REQUIRED,
    check_owned,
    default_text,
    flag_table,
    help_text,
    owners,
    resolve,
)


def test_train_options_has_one_field_per_declaration():
    assert [f.name for f in dataclasses.fields(mg.TrainOptions)] == list(OPTIONS)
    for field in dataclasses.fields(mg.TrainOptions):
        assert field.default == OPTIONS[field.name].default


def test_a_family_owns_what_it_declares_and_every_family_the_common_options():
    assert owners("T") == ["ddpm"]
    assert owners("latent_dim") == ["ae", "vae"]
    assert owners("conditional") == ["vae", "ddpm", "flow"]
    assert owners("steps") == list(FAMILIES)
    for family in FAMILIES.values():
        for option in family.options:
            assert family.name in owners(option.name)


def test_every_family_gives_the_required_options_a_value():
    for family in FAMILIES.values():
        opts = resolve(family.name, mg.TrainOptions())
        for name in REQUIRED:
            assert getattr(opts, name) is not None, (family.name, name)


@pytest.mark.parametrize("kind, options, message", [
    ("ae", dict(T=4), "--T applies to ddpm only, not ae"),
    ("classifier", dict(channels=16), "--channels applies to ae, vae, ddpm and flow only, not classifier"),
    ("flow", dict(channels=24), "--channels must be a multiple of 16 for a UNet"),
    ("ddpm", dict(prediction="x0"), "--prediction must be eps or v, got 'x0'"),
    ("ddpm", dict(min_snr_gamma=-1.0), "--min-snr-gamma must be >= 0"),
    ("vae", dict(lr_warmup=900), "--lr-warmup 900 is longer than the run (--steps 4)"),
    ("ae", dict(ema_warmup=1), "--ema-warmup must be >= 2"),
    ("ae", dict(conditional=True), "--conditional applies to vae, ddpm and flow only, not ae"),
    ("vae", dict(attention=True), "--attention applies to ddpm and flow only, not vae"),
    ("vae", dict(sampler="ddim"), "--sampler applies to ddpm and flow only, not vae"),
    ("vae", dict(channels=0), "--channels must be >= 1, got 0"),
    ("ddpm", dict(sample_eta=0.5), "--sample-eta applies to --sampler ddim"),
    ("ddpm", dict(sampler="ddim", sample_eta=-1.0), "--sample-eta must be >= 0"),
    ("ddpm", dict(sample_steps=4), "--sample-steps applies to --sampler ddim"),
    ("ddpm", dict(sample_spacing="edm"), "--sample-spacing applies to --sampler ddim or dpmpp"),
    ("ddpm", dict(sampler="dpmpp", sample_spacing="karras"), "--sample-spacing must be uniform, logsnr or edm, got"),
    ("flow", dict(sample_spacing="edm"), "--sample-spacing applies to ddpm only, not flow"),
    ("ddpm", dict(sampler="ddim", sample_steps=0), "--sample-steps must be >= 1"),
    ("ddpm", dict(sampler="plms"), "--sampler must be ddpm, ddim or dpmpp, got 'plms'"),
    ("ddpm", dict(guidance=2.0), "--guidance applies to conditional models"),
    ("ddpm", dict(label_dropout=0.2), "--label-dropout applies to conditional models"),
    ("ddpm", dict(conditional=True, label_dropout=1.0), "--label-dropout must be in [0, 1)"),
    ("vae", dict(binarize="static"), "--binarize must be none or dynamic, got 'static'"),
    ("ae", dict(lr_schedule="step"), "--lr-schedule must be constant or cosine"),
    ("ae", dict(shards=0), "--shards must be >= 1"),
    ("ae", dict(batch_size=8, shards=9), "--shards must be between 1 and --batch-size (8), got 9"),
])
def test_bad_settings_are_named_before_anything_is_written(tmp_path, tiny, kind, options, message):
    with pytest.raises(UsageError) as error:
        mg.train(kind, out=str(tmp_path), verbose=False, **{**tiny, **options})
    assert message in str(error.value)
    assert not any(tmp_path.iterdir())


def test_a_default_value_given_explicitly_is_harmless():
    resolve("ae", mg.TrainOptions(T=6, sigma="posterior"))  # ddpm's options, at their defaults
    check_owned("ddpm", ["T", "steps"])
    with pytest.raises(UsageError, match="--T applies to ddpm only"):
        check_owned("vae", ["T"])  # the CLI names a flag given at its default value too


def test_the_families_defaults_fill_what_was_left_unset():
    ae, vae, ddpm = (resolve(k, mg.TrainOptions()) for k in ("ae", "vae", "ddpm"))
    assert (ae.steps, ae.latent_dim, ae.lr) == (500, 64, 3e-3)
    assert (vae.steps, vae.latent_dim, vae.lr) == (600, 32, 2e-3)
    assert (ddpm.steps, ddpm.ema_decay, ddpm.label_dropout, ddpm.guidance) == (800, 0.995, None, None)
    conditional = resolve("ddpm", mg.TrainOptions(conditional=True))
    assert (conditional.label_dropout, conditional.guidance) == (0.1, 3.0)
    assert resolve("classifier", mg.TrainOptions()).lr_schedule == "cosine"
    assert (ae.eval_every, ae.checkpoint_every) == (100, 100)  # a fifth of the run


def test_help_and_the_flag_table_say_each_default_as_declared():
    assert default_text(OPTIONS["steps"]) == "ae 500, vae 600, ddpm/flow 800, classifier 2000"
    assert help_text(OPTIONS["warmup_steps"]).startswith("vae: steps over which")
    assert help_text(OPTIONS["warmup_steps"]).endswith("(default: 200)")
    assert help_text(OPTIONS["latent_dim"]).endswith("(default: ae 64, vae 32)")
    table = flag_table()
    for option in OPTIONS.values():
        assert f"`{option.cli_flag}" in table
    flags = {s for action in setup_arg_parser()._actions for s in action.option_strings}
    assert {o.cli_flag for o in OPTIONS.values()} <= flags


def test_a_default_warm_up_shrinks_with_a_short_run_and_a_given_one_is_checked():
    assert resolve("flow", mg.TrainOptions()).lr_warmup == 40
    assert resolve("flow", mg.TrainOptions(steps=20)).lr_warmup == 2  # a tenth of the run, not 40 of 20
    assert resolve("flow", mg.TrainOptions(steps=20, lr_warmup=15)).lr_warmup == 15  # asked for: kept
    with pytest.raises(UsageError, match="--lr-warmup 30 is longer than the run"):
        resolve("flow", mg.TrainOptions(steps=20, lr_warmup=30))
