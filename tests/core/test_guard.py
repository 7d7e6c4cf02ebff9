"""A plugin that breaks its contract is caught by benchbed, naming the model, not by a metric's arithmetic:
capability declarations before training (:func:`benchbed.validate.check_models`), output shapes while a
cell is evaluated (:mod:`benchbed.guard`), and a table folder that cannot be written before training."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from benchbed import MetricSpec, ModelSpec, cli, hookimpl
from benchbed.contracts import EvalContext, MetricResult, declaration_problem
from benchbed.guard import ContractError, checked_outputs
from benchbed.plugins import load_plugins


class SampleMean:
    """The mean of 64 samples: broadcasting would turn a wrong sample shape into a plausible number."""

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        x = ctx.model.sample(64).flatten(1)
        return MetricResult(float((x - ctx.data.test.x.flatten(1).mean(0)).pow(2).mean()))


def _plugin(helpers):
    class Flat(helpers.LinearAE):
        """Samples of shape [n, 1] on 2-D data: the contract says [n, 2]."""

        def sample(self, n: int) -> torch.Tensor:
            return super().sample(n)[:, :1]

    class Misspelt(helpers.LinearAE):
        capabilities = frozenset({"infer", "reconstruct", "samples"})

    class Boastful(helpers.LinearAE):
        capabilities = frozenset({"infer", "reconstruct", "sample", "log_likelihood"})

    class Unsaveable(helpers.LinearAE):
        """Written against the protocol without LatentModel's checkpoint()/restore()."""

        checkpoint = None
        restore = None

    class Fitless(helpers.LinearAE):
        """Registered one_shot but trained step by step: no fit()."""

    class Extra:
        @hookimpl
        def benchbed_register_models(self, register):  # noqa: ANN001, ANN202
            register(ModelSpec(name="flat", factory=Flat))
            register(ModelSpec(name="misspelt", factory=Misspelt))
            register(ModelSpec(name="boastful", factory=Boastful))
            register(ModelSpec(name="unsaveable", factory=Unsaveable))
            register(ModelSpec(name="fitless", factory=Fitless, one_shot=True))

        @hookimpl
        def benchbed_register_metrics(self, register):  # noqa: ANN001, ANN202
            register(MetricSpec(name="sample_mean", factory=SampleMean, higher_is_better=False,
                                requires=frozenset({"sample"})))

    return Extra()


@pytest.fixture
def extra_cli(monkeypatch, helpers):
    plugins = load_plugins(extra=[("fake", helpers.FakePlugin()), ("extra", _plugin(helpers))],
                           entry_points_enabled=False, strict=True)
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: plugins)
    return plugins


SUITE = """\
name = "g"
seeds = [0]
[budget]
steps = 8
batch_size = 16
[datasets.toy]
[models.linear]
{extra}
[metrics.sample_mean]
[metrics.fake_mse]
"""


def _suite(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "suite.toml").write_text(SUITE.format(extra=extra))
    return folder


def test_a_wrong_sample_shape_fails_the_metric_naming_the_model_and_the_tables_still_build(
        extra_cli, tmp_path, monkeypatch, capsys) -> None:
    folder = _suite(tmp_path, "[models.flat]")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "g", "--no-bars"]) == 3  # finished, with a failed metric value
    capsys.readouterr()
    assert cli.main(["leaderboard", "g", "--format", "md"]) == 0
    out = capsys.readouterr().out
    flat = next(line for line in out.splitlines() if line.startswith("| flat |"))
    linear = next(line for line in out.splitlines() if line.startswith("| linear |"))
    assert "failed" in flat and "n/a" not in linear and "failed" not in linear, out
    assert "model 'flat' (component 'flat'): sample() returned shape (64, 1), its contract says (64, 2)" in out
    assert (folder / "index.html").is_file()  # the HTML page (sample previews) built: no bad preview in it


def test_the_guard_leaves_a_correct_model_untouched(helpers, fake_registry) -> None:
    model = helpers.LinearAE()
    data = helpers.ToyData().load(seed=0)
    from benchbed.contracts import Budget, SetupContext

    model.setup(SetupContext(info=data.info, train=data.train, budget=Budget(steps=1, batch_size=8),
                             device=torch.device("cpu"), seed=0))
    before = type(model).sample
    with checked_outputs(model, data.info.shape, "model 'm'"):
        assert model.sample(3).shape == (3, 2) and model.reconstruct(data.test.x).shape == data.test.x.shape
        assert model.infer(data.test.x).shape[0] == len(data.test.x)
    assert "sample" not in vars(model) and type(model).sample is before
    with checked_outputs(model, (3,), "model 'm'"), pytest.raises(ContractError, match=r"\(data shape \(3,\)\)"):
        model.sample(2)


@pytest.mark.parametrize(("model", "message"), [
    ("misspelt", r"\[models.misspelt\]: model 'misspelt' \(plugin 'extra', .*\) declares unknown capabilities "
                 r"\['samples'\]"),
    ("boastful", r"\[models.boastful\]: model 'boastful' \(plugin 'extra', .*\) declares 'log_likelihood' but has "
                 r"no method log_likelihood\(\)"),
    ("unsaveable", r"\[models.unsaveable\]: model 'unsaveable' \(plugin 'extra', .*\) has no method checkpoint\(\), "
                   r"restore\(\), which the runner calls on a model trained step by step"),
    ("fitless", r"\[models.fitless\]: model 'fitless' \(plugin 'extra', .*\) has no method fit\(\), which the "
                r"runner calls on a one-shot model"),
])
def test_wrong_declarations_and_missing_methods_are_refused_before_training(extra_cli, tmp_path, monkeypatch, capsys,
                                                                          helpers, model: str, message: str) -> None:
    _suite(tmp_path, f"[models.{model}]")
    monkeypatch.chdir(tmp_path)
    setups = helpers.LinearAE.setups
    for command in (["validate", "g"], ["run", "g", "--no-bars"]):
        capsys.readouterr()
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("benchbed: error: ") and __import__("re").search(message, err), err
    assert helpers.LinearAE.setups == setups, "a model was set up before the error"


def test_declaration_problem() -> None:
    class M:
        capabilities = frozenset({"sample"})
        sample = None

    assert declaration_problem(M()) == "declares 'sample' but has no method sample()"
    M.sample = lambda self, n: None  # type: ignore[assignment,method-assign]
    assert declaration_problem(M()) == ""


def test_an_unwritable_table_folder_is_refused_before_training(extra_cli, tmp_path, monkeypatch, capsys,
                                                              helpers) -> None:
    _suite(tmp_path, "")
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)  # root may write anywhere: simulate the refusal
    setups = helpers.LinearAE.setups
    capsys.readouterr()
    assert cli.main(["run", "g", "--no-bars"]) == 2
    err = capsys.readouterr().err
    assert "publish folder g: cannot write the tables there (Permission denied)" in err, err
    assert helpers.LinearAE.setups == setups
