"""Suite files and parameter schemas: every error names the file, the key and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchbed.contracts import Budget
from benchbed.errors import SuiteError
from benchbed.grid import plan
from benchbed.params import resolve, schema
from benchbed.registry import Registry
from benchbed.sampling import BoundSampler
from benchbed.suite import TOP_KEYS, load_suite, parse_suite

VALID_KEYS = ", ".join(sorted(TOP_KEYS))
LINEAR_PARAMS = ("latent_dim, lr, noise, hidden, scale, mode, fail_at, fail_seed, nan_at, flag_file, flag_at, "
                 "flag_action, sample_fails")


def _error(make_suite, body: str, header: str | None = None) -> str:
    """The SuiteError message of loading ``body``."""
    with pytest.raises(SuiteError) as exc:
        make_suite(body) if header is None else make_suite(body, header=header)
    return str(exc.value)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "suite.toml")


def test_valid_suite_resolves_defaults_and_coerces(make_suite, path: str) -> None:
    suite = make_suite("""
        [models.lin]
        component = "linear"
        lr = 1
        hidden = [8, 8]
        [metrics.fake_mse]
    """)
    (lin,) = suite.models
    assert (lin.label, lin.component) == ("lin", "linear")
    assert lin.params["lr"] == 1.0 and isinstance(lin.params["lr"], float)  # int accepted for float
    assert lin.params["hidden"] == (8, 8)  # TOML array -> tuple
    assert lin.params["latent_dim"] == 1 and lin.params["mode"] == "plain"  # defaults filled in
    assert dict(lin.given) == {"lr": 1.0, "hidden": (8, 8)}
    assert suite.name == "t" and suite.seeds == (0,) and suite.budget == Budget(24, 16)
    assert suite.device == "auto" and suite.checkpoint_every == 0 and suite.path == Path(path)
    assert suite.folder == Path(path).parent and suite.samplers == ()


def test_int_given_for_optional_float_is_coerced(make_suite) -> None:
    """``scale: float | None``: ``scale = 2`` must behave exactly like ``scale = 2.0`` (value and run id)."""
    a = make_suite("[models.linear]\nscale = 2\n[metrics.fake_mse]\n", name="a.toml")
    b = make_suite("[models.linear]\nscale = 2.0\n[metrics.fake_mse]\n", name="b.toml")
    assert isinstance(a.models[0].params["scale"], float)
    assert a.models[0].identity() == b.models[0].identity()


def test_unknown_component_suggests_close_match(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.lineer]\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: [models.lineer] ({path}, line 7): unknown model 'lineer'; did you mean 'linear'? "
                   "(registered models: dyn, dyn_any, linear)")


def test_unknown_builtin_component_suggests_vae(tmp_path: Path) -> None:
    from benchbed.plugins import load_plugins

    registry = load_plugins(strict=False).registry
    text = "seeds = [0]\n[budget]\nsteps = 1\nbatch_size = 1\n[datasets.gmm8]\n[models.vea]\n[metrics.recon_mse]\n"
    with pytest.raises(SuiteError, match=r"line 6\): unknown model 'vea'; did you mean 'vae'"):
        parse_suite(text, registry, path=tmp_path / "s.toml")


def test_unknown_component_through_alias(make_suite, path: str) -> None:
    msg = _error(make_suite, '[models.mine]\ncomponent = "lineer"\n[metrics.fake_mse]\n')
    # the line of the component key that names it (line 8), not of its table
    assert msg.startswith(f"{path}: [models.mine] ({path}, line 8): unknown model 'lineer'; did you mean 'linear'?")


def test_non_string_component_is_a_suite_error(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.mine]\ncomponent = 3\n[metrics.fake_mse]\n")
    assert path in msg and "component" in msg


def test_unknown_parameter_lists_valid_ones(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.lin]\ncomponent = 'linear'\nlatnet_dim = 2\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: model 'lin' (component 'linear'): unknown parameter 'latnet_dim' ({path}, line 9); "
                   f"valid parameters: {LINEAR_PARAMS}")


def test_wrong_type_names_key_file_and_line(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.linear]\nlr = 0.1\nlatent_dim = \"two\"\n[metrics.fake_mse]\n")
    assert msg == f"{path}: model 'linear': parameter 'latent_dim' ({path}, line 9) must be int, got str 'two'"


@pytest.mark.parametrize(("value", "shown"), [("true", "bool True"), ("1.5", "float 1.5"), ("[1]", "list [1]")])
def test_wrong_type_variants_for_int(make_suite, path: str, value: str, shown: str) -> None:
    msg = _error(make_suite, f"[models.linear]\nlatent_dim = {value}\n[metrics.fake_mse]\n")
    assert msg.endswith(f"parameter 'latent_dim' ({path}, line 8) must be int, got {shown}")


def test_wrong_type_in_tuple_and_inline_table(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models]\nlinear = { hidden = [1, \"x\"] }\n[metrics.fake_mse]\n")
    assert msg.startswith(f"{path}: model 'linear': parameter 'hidden' ({path}, line 8) must be ")
    assert msg.endswith("got list [1, 'x']")


def test_literal_parameter_lists_allowed_values(make_suite) -> None:
    msg = _error(make_suite, "[models.linear]\nmode = \"fancyy\"\n[metrics.fake_mse]\n")
    assert "'mode'" in msg and "got str 'fancyy'" in msg
    assert "'plain'" in msg and "'fancy'" in msg, f"the message should list the allowed values: {msg}"


def test_invalid_toml_reports_line_and_column(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.linear\n[metrics.fake_mse]\n")
    assert re.fullmatch(rf"{re.escape(path)}: invalid TOML: .* \(at line 7, column \d+\)", msg), msg


def test_missing_file(tmp_path: Path, fake_registry: Registry) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SuiteError, match=f"cannot read suite file {re.escape(str(missing))}: No such file"):
        load_suite(missing, fake_registry)


def test_unknown_top_level_key(make_suite, path: str) -> None:
    header = 'name = "t"\nseed = [1]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.toy]\n'
    msg = _error(make_suite, "[models.linear]\n[metrics.fake_mse]\n", header=header)
    assert msg == f"{path}: unknown top-level key 'seed' ({path}, line 2); valid keys: {VALID_KEYS}"
    msg = _error(make_suite, "[model.linear]\n[metrics.fake_mse]\n")
    assert msg.startswith(f"{path}: unknown top-level key 'model'")


@pytest.mark.parametrize(("seeds", "expected"), [
    ("[]", "must be a non-empty list of integers, got []"),
    ("[0, \"1\"]", "must be a non-empty list of integers, got [0, '1']"),
    ("[true]", "must be a non-empty list of integers, got [True]"),
    ("[0.5]", "must be a non-empty list of integers, got [0.5]"),
    ("3", "must be list, got int 3"),
    ("[0, 1, 0]", "repeats 0: each seed runs once"),
    ("[18446744073709551616]", ": seed 18446744073709551616 is outside 0 .. 2**63 - 1"),
    ("[-1]", ": seed -1 is outside 0 .. 2**63 - 1"),
])
def test_bad_seeds(make_suite, path: str, seeds: str, expected: str) -> None:
    header = f'name = "t"\nseeds = {seeds}\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.toy]\n'
    msg = _error(make_suite, "[models.linear]\n[metrics.fake_mse]\n", header=header)
    assert msg == f"{path}: 'seeds' ({path}, line 2){'' if expected.startswith(':') else ' '}{expected}"


@pytest.mark.parametrize("name", ['""', '"  "', '"two\\nlines"', '" padded"'])
def test_bad_suite_name(make_suite, path: str, name: str) -> None:
    header = f'name = {name}\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.toy]\n'
    msg = _error(make_suite, "[models.linear]\n[metrics.fake_mse]\n", header=header)
    assert msg.startswith(f"{path}: 'name' ({path}, line 1) must be one line without surrounding spaces")


@pytest.mark.parametrize(("body", "expected"), [
    ("[models.linear]\nsamplers = ['walk']\n[samplers.walk]\n", "model 'linear' has no dynamics"),
    ("[models.dyn]\nsamplers = []\n[samplers.walk]\n", "must name each sampler entry once and at least one"),
    ("[models.dyn]\nsamplers = ['walk', 'walk']\n[samplers.walk]\n", "must name each sampler entry once"),
])
def test_bad_sampler_lists(make_suite, path: str, body: str, expected: str) -> None:
    msg = _error(make_suite, body + "[metrics.fake_mse]\n")
    assert "[models." in msg and "'samplers' (" in msg and expected in msg, msg


def test_bad_budget(make_suite, path: str) -> None:
    base = 'seeds = [0]\n[datasets.toy]\n[models.linear]\n[metrics.fake_mse]\n'
    msg = _error(make_suite, "", header=base + "[budget]\nsteps = 2\nbatch_size = 2\nepochs = 3\n")
    assert msg == f"{path}: unknown budget key 'epochs' in [budget] ({path}, line 8); valid: steps, batch_size"
    msg = _error(make_suite, "", header=base + "[budget]\nsteps = 0\nbatch_size = 2\n")
    assert msg == f"{path}: [budget] 'steps' ({path}, line 6) must be a positive integer (at most 1e+12), got 0"
    msg = _error(make_suite, "", header=base + "[budget]\nsteps = 2\nbatch_size = 2.5\n")
    assert msg == (f"{path}: [budget] 'batch_size' ({path}, line 7) must be a positive integer (at most 1e+12), "
                   "got 2.5")
    msg = _error(make_suite, "", header=base + "[budget]\nsteps = 2\n")
    assert msg == f"{path}: [budget] needs 'batch_size' ({path}, line 5)"
    msg = _error(make_suite, "", header=base)  # both missing keys, together
    assert msg == (f"2 problems:\n  - {path}: [budget] needs 'steps' ({path})\n"
                   f"  - {path}: [budget] needs 'batch_size' ({path})")


def test_bad_model_budget(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.linear]\nbudget = { epochs = 1 }\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: unknown budget key 'epochs' in [models.linear.budget] ({path}, line 8); "
                   "valid: steps, batch_size")


@pytest.mark.parametrize("axis", ["models", "datasets", "metrics"])
def test_missing_axis(make_suite, path: str, axis: str) -> None:
    tables = {"models": "[models.linear]\n", "datasets": "[datasets.toy]\n", "metrics": "[metrics.fake_mse]\n"}
    header = 'seeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n'
    body = "".join(t for a, t in tables.items() if a != axis)
    msg = _error(make_suite, body, header=header)
    assert msg == f"{path}: the suite names no {axis} (add a [{axis}.<name>] table)"


def test_axis_entry_must_be_a_table(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models]\nlinear = 3\n[metrics.fake_mse]\n")
    assert msg.startswith(f"{path}: [models.linear] ({path}, line 8) must be a table of parameters, got int 3")


def test_alias_and_budget_overrides(make_suite, fake_registry: Registry) -> None:
    header = 'name = "t"\nseeds = [0, 1]\n[budget]\nsteps = 24\nbatch_size = 16\n'
    suite = make_suite("""
        [datasets.toy]
        budget = { batch_size = 8, steps = 10 }
        [models.small]
        component = "linear"
        latent_dim = 2
        [models.small.budget]
        steps = 7
        [models.linear]
        [metrics.fake_mse]
    """, header=header)
    small, plain = suite.models
    (toy,) = suite.datasets
    assert small.component == "linear" and small.params["latent_dim"] == 2 and small.budget == {"steps": 7}
    assert suite.budget_for(small, toy) == Budget(steps=7, batch_size=8)  # model > data set > suite
    assert suite.budget_for(plain, toy) == Budget(steps=10, batch_size=8)
    cells, notes = plan(suite, fake_registry)
    assert len(cells) == 4 and not notes  # 2 models x 1 data set x 2 seeds
    assert len({c.run_id for c in cells}) == 4


def test_sampler_role_tables(make_suite, fake_registry: Registry, path: str) -> None:
    suite = make_suite("""
        [models.dyn]
        [samplers.walk]
        step_size = 0.2
        posterior = { n_steps = 2 }
        [samplers.walk.prior]
        n_steps = 9
        [metrics.fake_mse]
    """)
    (walk,) = suite.samplers
    assert dict(walk.given) == {"step_size": 0.2}
    assert {k: dict(v) for k, v in walk.roles.items()} == {"posterior": {"n_steps": 2}, "prior": {"n_steps": 9}}
    msg = _error(make_suite, "[models.dyn]\n[samplers.walk]\nposterior = { n_stepz = 2 }\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: sampler 'walk' role 'posterior': unknown parameter 'n_stepz' ({path}, line 9); "
                   "valid parameters: n_steps, step_size, jitter")
    msg = _error(make_suite, "[models.dyn]\n[samplers.walk.prior]\nn_steps = 1.5\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: sampler 'walk' role 'prior': parameter 'n_steps' ({path}, line 9) must be int, "
                   "got float 1.5")


def test_bound_sampler_precedence(fake_registry: Registry) -> None:
    """model defaults < suite sampler parameters < the suite's role table; unknown model defaults dropped."""
    bound = BoundSampler(fake_registry.sampler("walk"), {"step_size": 0.2}, {"posterior": {"n_steps": 2}})
    post = bound("posterior", n_steps=9, step_size=0.5, target_accept=0.6)
    prior = bound("prior", n_steps=9, step_size=0.5)
    assert (post.n_steps, post.step_size, prior.n_steps, prior.step_size) == (2, 0.2, 9, 0.2)
    assert bound.resolved == {"posterior": {"n_steps": 2, "step_size": 0.2, "jitter": 0.0},
                              "prior": {"n_steps": 9, "step_size": 0.2, "jitter": 0.0}}
    with pytest.raises(SuiteError, match="sampler 'walk' \\(role 'prior'\\): parameter 'n_steps' must be int"):
        bound("prior", n_steps="many")


def test_plan_sampler_axis(make_suite, fake_registry: Registry) -> None:
    suite = make_suite("[models.dyn]\n[models.linear]\n[samplers.walk]\n[samplers.slow]\ncomponent = 'walk'\n"
                       "step_size = 0.01\n[metrics.fake_mse]\n")
    cells, notes = plan(suite, fake_registry)
    assert [(c.model.label, c.sampler_label) for c in cells] == [("dyn", "walk"), ("dyn", "slow"), ("linear", "")]
    assert not notes
    suite = make_suite("[models.dyn]\n[metrics.fake_mse]\n", name="nosampler.toml")
    (cell,) = plan(suite, fake_registry)[0]
    assert cell.sampler is not None and cell.sampler.component == "walk"  # the default sampler


def test_resolve_directly() -> None:
    def factory(*, a: int, b: float = 1.0, c: tuple[float, ...] = (), d: int | None = None) -> None: ...

    assert [p.name for p in schema(factory).values()] == ["a", "b", "c", "d"]
    assert resolve(factory, {"a": 1, "c": [1.5, 2.5]}, what="x") == {"a": 1, "c": (1.5, 2.5), "b": 1.0, "d": None}
    with pytest.raises(SuiteError, match="^x: required parameter 'a' is missing$"):
        resolve(factory, {}, what="x")
    with pytest.raises(SuiteError, match="^x: unknown parameter 'e' @here; valid parameters: a, b, c, d$"):
        resolve(factory, {"a": 1, "e": 2}, what="x", where=lambda k: " @here")
    with pytest.raises(SuiteError, match="parameter 'd' must be "):
        resolve(factory, {"a": 1, "d": "3"}, what="x")


def test_wrong_type_in_second_inline_table_points_at_its_line(make_suite, path: str) -> None:
    """Two inline tables with the same key: the line must be the offending entry's, not the first one's."""
    msg = _error(make_suite, "[models]\nlin = { component = 'linear', lr = 0.1 }\n"
                                "lin2 = { component = 'linear', lr = 'x' }\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: model 'lin2' (component 'linear'): parameter 'lr' ({path}, line 9) must be float, "
                   "got str 'x'")


def test_model_samplers_key_limits_the_sampler_axis(make_suite, fake_registry) -> None:
    from benchbed.grid import plan

    suite = make_suite("[models.dyn]\nsamplers = ['slow']\n[models.linear]\n[models.free]\ncomponent = 'dyn_any'\n"
                       "samplers = ['walk']\n[samplers.walk]\n[samplers.slow]\ncomponent = 'walk'\nstep_size = 0.01\n"
                       "[metrics.fake_mse]\n")
    cells, _ = plan(suite, fake_registry)
    assert sorted((c.model.label, c.sampler_label) for c in cells) == [("dyn", "slow"), ("free", "walk"),
                                                                        ("linear", "")]
    with pytest.raises(SuiteError, match=r"\[samplers\.walk\] \(.*line \d+\) is used by no model of the suite"):
        make_suite("[models.dyn]\nsamplers = ['slow']\n[samplers.walk]\n[samplers.slow]\ncomponent = 'walk'\n"
                   "step_size = 0.01\n[metrics.fake_mse]\n", name="unused.toml")
    with pytest.raises(SuiteError, match=r"'samplers' \(.*line \d+\) must list sampler entries of this suite "
                                         r"\(walk\), got \['nope'\]"):
        make_suite("[models.dyn]\nsamplers = ['nope']\n[samplers.walk]\n[metrics.fake_mse]\n")


def test_aliases_with_identical_settings_are_refused(make_suite, path: str) -> None:
    msg = _error(make_suite, "[models.a]\ncomponent = 'linear'\nlr = 0.01\n[models.b]\ncomponent = 'linear'\n"
                             "lr = 0.01\n[metrics.fake_mse]\n")
    assert msg.startswith(f"{path}: [models.b] ({path}, line 10) has the same component and settings as [models.a]")
    make_suite("[models.a]\ncomponent = 'linear'\n[models.b]\ncomponent = 'linear'\nlr = 0.01\n[metrics.fake_mse]\n",
               name="ok.toml")


def test_a_misspelt_sampler_role_is_an_error() -> None:
    """Built-in models declare the roles they ask for; a role table no paired model asks for is refused."""
    from benchbed.plugins import load_plugins
    from benchbed.suite import parse_suite

    registry = load_plugins().registry
    text = ('seeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.gmm8]\n[models.lebm]\n'
            '[samplers.langevin]\nposteriour = { n_steps = 3 }\n[metrics.mmd]\n')
    with pytest.raises(SuiteError) as info:
        parse_suite(text, registry, path=Path("s.toml"))
    assert str(info.value) == ("s.toml: [samplers.langevin] role 'posteriour' (s.toml, line 8): no model paired with "
                               "this sampler asks for it; roles asked: posterior, prior (did you mean 'posterior'?)")
    parse_suite(text.replace("posteriour", "posterior"), registry, path=Path("s.toml"))
    # svebm asks only for the prior
    with pytest.raises(SuiteError, match="role 'posterior'.*roles asked: prior"):
        parse_suite(text.replace("lebm", "svebm").replace("posteriour", "posterior"), registry, path=Path("s.toml"))
    # every misspelt role is listed, not only the first
    with pytest.raises(SuiteError) as info:
        parse_suite(text.replace("posteriour = { n_steps = 3 }", "posteriour = { n_steps = 3 }\npiror = {}"),
                    registry, path=Path("s.toml"))
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems:" and len(lines) == 3, lines
    assert lines[1].startswith("  - s.toml: [samplers.langevin] role 'posteriour' (s.toml, line 8): no model paired")
    assert lines[2].startswith("  - s.toml: [samplers.langevin] role 'piror' (s.toml, line 9): no model paired")


def test_every_top_level_problem_is_reported_with_the_entries(make_suite, path: str) -> None:
    """Independent mistakes in the top-level keys (two misspelt keys, a repeated seed, a bad device and
    budget) and in an entry come in one error, a line each, in the file's order of checks."""
    header = ('name = "t"\nseeds = [0, 0]\ndevise = "cpu"\ndevice = "gpu"\ncheckpoint_evry = 5\n'
              "[budget]\nsteps = 0\nbatch_size = 16\n[datasets.toy]\n")
    lines = _error(make_suite, "[models.linear]\nlr = 'fast'\n[metrics.fake_mse]\n", header=header).splitlines()
    assert lines[0] == "6 problems:"
    assert lines[1].startswith(f"  - {path}: unknown top-level key 'checkpoint_evry' ({path}, line 5)")
    assert lines[2].startswith(f"  - {path}: unknown top-level key 'devise' ({path}, line 3)")
    assert lines[3] == f"  - {path}: 'seeds' ({path}, line 2) repeats 0: each seed runs once"
    assert lines[4].startswith(f"  - {path}: [budget] 'steps' ({path}, line 7) must be a positive integer")
    assert lines[5].startswith(f"  - {path}: 'device' ({path}, line 4): device 'gpu' is not one of")
    assert lines[6].startswith(f"  - {path}: model 'linear': parameter 'lr' ({path}, line 11) must be")
    assert len(lines) == 7


def test_every_problem_that_needs_the_axes_is_reported_together(make_suite, path: str) -> None:
    """The checks that run once the entries are valid (no metrics, each sampler no model uses, an
    ``eval_at`` step past the budget, a bad ``[tracking]`` table) also come in one error, a line each,
    rather than one validation per mistake."""
    header = 'name = "t"\neval_at = [99]\n[tracking]\nbackends = "tb"\n[budget]\nsteps = 24\nbatch_size = 16\n'
    lines = _error(make_suite, "[datasets.toy]\n[models.dyn]\nsamplers = ['walk']\n[samplers.walk]\n"
                               "[samplers.slow]\ncomponent = 'walk'\nstep_size = 0.01\n"
                               "[samplers.slower]\ncomponent = 'walk'\nstep_size = 0.001\n",
                   header=header).splitlines()
    assert lines[0] == "5 problems:", "\n".join(lines)
    assert lines[1] == f"  - {path}: the suite names no metrics (add a [metrics.<name>] table)"
    for line, label, at in ((lines[2], "slow", 12), (lines[3], "slower", 15)):
        assert line == (f"  - {path}: [samplers.{label}] ({path}, line {at}) is used by no model of the suite "
                        "(no model with dynamics accepts it); remove it")
    assert lines[4].startswith(f"  - {path}: 'eval_at' ({path}, line 2): step 99 is past the budget"), lines[4]
    assert lines[5] == f"  - {path} ({path}, line 3): tracking.backends must be a list of tracker names, got 'tb'"
    assert len(lines) == 6


def test_wrong_type_in_tuple_names_the_element(make_suite, path: str) -> None:
    """A list with one bad element names that element (index, type and value), not only the list."""
    msg = _error(make_suite, "[models.linear]\nhidden = [4, 8, \"x\"]\n[metrics.fake_mse]\n")
    assert msg == (f"{path}: model 'linear': parameter 'hidden' ({path}, line 8) must be tuple[int, ...] "
                   "('hidden'[2] is str 'x', not int), got list [4, 8, 'x']")


def test_non_finite_float_is_refused_at_load(make_suite, path: str) -> None:
    """Floats must be finite unless a parameter declares otherwise (benchbed.params): inf/nan never reach training."""
    for value in ("inf", "-inf", "nan"):
        msg = _error(make_suite, f"[models.linear]\nlr = {value}\n[metrics.fake_mse]\n")
        assert msg == f"{path}: model 'linear': parameter 'lr' ({path}, line 8) must be finite, got {value}"


def test_every_bad_entry_is_reported_at_once(make_suite, path: str) -> None:
    """Two bad model entries and a bad metric entry: one error lists all three, each with its line, so a
    suite author fixes them in one round rather than one validation per mistake."""
    msg = _error(make_suite, "[models.lin]\ncomponent = 'linear'\nlatnet_dim = 2\n"
                             "[models.linear]\nlr = 'fast'\n"
                             "[metrics.fake_mse]\n[metrics.fake_msee]\n")
    lines = msg.splitlines()
    assert lines[0] == "3 problems:"
    assert lines[1] == (f"  - {path}: model 'lin' (component 'linear'): unknown parameter 'latnet_dim' "
                        f"({path}, line 9); valid parameters: {LINEAR_PARAMS}")
    assert lines[2].startswith(f"  - {path}: model 'linear': parameter 'lr' ({path}, line 11) must be")
    assert lines[3].startswith(f"  - {path}: [metrics.fake_msee] ({path}, line 13): unknown metric 'fake_msee'")
    assert len(lines) == 4


def test_every_budget_problem_of_a_table_is_reported_together(tmp_path: Path, fake_registry) -> None:
    """A negative step count, an unknown key and a value past int64 in one [budget] table: one error, a line
    each (the steps beyond MAX_BUDGET would overflow the store's and torch's integers)."""
    path = tmp_path / "suite.toml"
    path.write_text('name = "t"\nseeds = [0]\n[budget]\nsteps = -1\nfoo = 2\nbatch_size = 10000000000000000000\n'
                    "[datasets.toy]\n[models.linear]\n[metrics.fake_mse]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path, fake_registry)
    text = str(info.value)
    assert "'steps'" in text and "got -1" in text
    assert "unknown budget key 'foo'" in text
    assert "'batch_size'" in text and "at most 1e+12), got 10000000000000000000" in text
