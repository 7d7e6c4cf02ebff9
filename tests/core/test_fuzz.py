"""Hostile input: generated bad suite files and damaged stores, data and result files.

Every case goes through the real command line (``benchbed validate`` / ``run`` / ``leaderboard``) with
the built-in plugins and asserts the exact one-line error (exit code 2), and that nothing was trained
or stored.  The cases are generated from one valid suite by small mutations (:func:`mutate`), so a
new check only needs a line here.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchbed import cli, published
from benchbed.plugins import load_registry

BASE = """\
name = "fz"
seeds = [0]
#TOP

[budget]
steps = 2
batch_size = 8

[datasets.gmm8]
#DATASET

[models.vae]
#VAE
[models.lebm]
#LEBM

[samplers.langevin]
#SAMPLER

[metrics.mmd]
#MMD
"""


def mutate(**at: str) -> str:
    """BASE with text inserted at the ``#NAME`` markers (``top=``, ``vae=``, ...) or replacing ``old``."""
    text = BASE
    for marker, insert in at.items():
        if marker.startswith("replace"):
            old, new = insert.split(" => ")
            assert old in text, old
            text = text.replace(old, new)
        else:
            text = text.replace(f"#{marker.upper()}", insert)
    return text


def line(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` that contains ``needle``."""
    return next(i for i, s in enumerate(text.splitlines(), 1) if needle in s)


# (case id, suite text, expected message after "benchbed: error: {file}: "; {line:...} is the line of ...)
SUITE_CASES: list[tuple[str, str, str]] = [
    ("invalid TOML", mutate(vae="[models\n"), "invalid TOML: Expected ']' at the end of a table declaration "
                                              "(at line 13, column 8)"),
    ("unknown top-level key", mutate(top="seed = 1"),
     "unknown top-level key 'seed' ({file}, line 3); valid keys: budget, checkpoint_every, datasets, description, "
     "device, eval_at, metrics, models, name, samplers, seeds, tracking"),
    ("name not a string", mutate(replace='name = "fz" => name = 3'), "'name' ({file}, line 1) must be str, got int 3"),
    ("empty name", mutate(replace='name = "fz" => name = ""'),
     "'name' ({file}, line 1) must be one line without surrounding spaces, got ''"),
    ("multi-line name", mutate(replace='name = "fz" => name = "a\\nb"'),
     "'name' ({file}, line 1) must be one line without surrounding spaces, got 'a\\nb'"),
    ("padded name", mutate(replace='name = "fz" => name = " fz"'),
     "'name' ({file}, line 1) must be one line without surrounding spaces, got ' fz'"),
    ("description not a string", mutate(top="description = 3"),
     "'description' ({file}, line 3) must be str, got int 3"),
    ("seeds not a list", mutate(replace="seeds = [0] => seeds = 0"),
     "'seeds' ({file}, line 2) must be list, got int 0"),
    ("no seeds", mutate(replace="seeds = [0] => seeds = []"),
     "'seeds' ({file}, line 2) must be a non-empty list of integers, got []"),
    ("seed as text", mutate(replace='seeds = [0] => seeds = ["0"]'),
     "'seeds' ({file}, line 2) must be a non-empty list of integers, got ['0']"),
    ("seed as bool", mutate(replace="seeds = [0] => seeds = [true]"),
     "'seeds' ({file}, line 2) must be a non-empty list of integers, got [True]"),
    ("seed as float", mutate(replace="seeds = [0] => seeds = [0.5]"),
     "'seeds' ({file}, line 2) must be a non-empty list of integers, got [0.5]"),
    ("duplicate seeds", mutate(replace="seeds = [0] => seeds = [0, 1, 0]"),
     "'seeds' ({file}, line 2) repeats 0: each seed runs once"),
    ("negative seed", mutate(replace="seeds = [0] => seeds = [-1]"),
     "'seeds' ({file}, line 2): seed -1 is outside 0 .. 2**63 - 1"),
    ("seed beyond 64 bits", mutate(replace="seeds = [0] => seeds = [18446744073709551616]"),
     "'seeds' ({file}, line 2): seed 18446744073709551616 is outside 0 .. 2**63 - 1"),
    ("unknown device", mutate(top='device = "tpu"'),
     "'device' ({file}, line 3): device 'tpu' is not one of auto, cpu, mps, cuda, cuda:N"),
    ("device not a string", mutate(top="device = 1"), "'device' ({file}, line 3) must be str, got int 1"),
    ("checkpoint_every as text", mutate(top='checkpoint_every = "often"'),
     "'checkpoint_every' ({file}, line 3) must be int, got str 'often'"),
    ("negative checkpoint_every", mutate(top="checkpoint_every = -5"),
     "'checkpoint_every' ({file}, line 3) must be >= 0 (0: only the final checkpoint), got -5"),
    ("an unused sampler entry", mutate(lebm='samplers = ["langevin"]', sampler="[samplers.hmc]"),
     "[samplers.hmc] ({file}, line 18) is used by no model of the suite (no model with dynamics accepts it); "
     "remove it"),
    ("budget without steps", mutate(replace="steps = 2\n => "), "[budget] needs 'steps' ({file}, line 5)"),
    ("zero steps", mutate(replace="steps = 2 => steps = 0"),
     "[budget] 'steps' ({file}, line 6) must be a positive integer (at most 1e+12), got 0"),
    ("fractional steps", mutate(replace="steps = 2 => steps = 2.5"),
     "[budget] 'steps' ({file}, line 6) must be a positive integer (at most 1e+12), got 2.5"),
    ("negative batch size", mutate(replace="batch_size = 8 => batch_size = -8"),
     "[budget] 'batch_size' ({file}, line 7) must be a positive integer (at most 1e+12), got -8"),
    ("unknown budget key", mutate(replace="batch_size = 8 => batch_size = 8\nepochs = 3"),
     "unknown budget key 'epochs' in [budget] ({file}, line 8); valid: steps, batch_size"),
    ("model budget as text", mutate(vae='budget = "fast"'),
     "[models.vae] 'budget' ({file}, line 13) must be a table such as { steps = 1000 }, got str 'fast'"),
    ("data set budget as list", mutate(dataset="budget = [1, 2]"),
     "[datasets.gmm8] 'budget' ({file}, line 10) must be a table such as { steps = 1000 }, got list [1, 2]"),
    ("unknown key in a model budget", mutate(vae="budget = { epochs = 3 }"),
     "unknown budget key 'epochs' in [models.vae.budget] ({file}, line 13); valid: steps, batch_size"),
    ("zero steps in a model budget", mutate(vae="budget = { steps = 0 }"),
     "[models.vae.budget] 'steps' ({file}, line 13) must be a positive integer (at most 1e+12), got 0"),
    ("no metrics", mutate(replace="[metrics.mmd]\n#MMD\n => "),
     "the suite names no metrics (add a [metrics.<name>] table)"),
    ("no data sets", mutate(replace="[datasets.gmm8]\n#DATASET\n => "),
     "the suite names no datasets (add a [datasets.<name>] table)"),
    ("unknown model", mutate(replace="[models.vae] => [models.vea]"),
     "[models.vea] ({file}, line 12): unknown model 'vea'; did you mean 'vae', 'svebm'? (registered models: "
     "{models})"),
    ("unknown metric", mutate(replace="[metrics.mmd] => [metrics.mdm]"),
     "[metrics.mdm] ({file}, line 20): unknown metric 'mdm'; did you mean 'mmd'? (registered metrics: "
     "{metrics})"),
    ("unknown data set", mutate(replace="[datasets.gmm8] => [datasets.gmm9]"),
     "[datasets.gmm9] ({file}, line 9): unknown dataset 'gmm9'; did you mean 'gmm8', 'gmm25'? (registered datasets: "
     "{datasets})"),
    ("unknown sampler", mutate(replace="[samplers.langevin] => [samplers.langevine]"),
     "[samplers.langevine] ({file}, line 17): unknown sampler 'langevine'; did you mean 'langevin'? (registered "
     "samplers: {samplers})"),
    ("entry not a table", mutate(replace="[metrics.mmd]\n#MMD\n => [metrics]\nmmd = 3\n"),
     "[metrics.mmd] ({file}, line 21) must be a table of parameters, got int 3"),
    ("component not a string", mutate(vae="component = 1"),
     "[models.vae] 'component' ({file}, line 13) must be a string naming a registered model, got int 1"),
    ("unknown model parameter", mutate(vae="latent_dimm = 3"),
     "model 'vae': unknown parameter 'latent_dimm' ({file}, line 13); valid parameters: latent_dim, arch, hidden, "
     "lr, obs_std, learn_obs_std, n_score_samples"),
    ("parameter as text", mutate(vae='latent_dim = "8"'),
     "model 'vae': parameter 'latent_dim' ({file}, line 13) must be int, got str '8'"),
    ("parameter as bool", mutate(vae="latent_dim = true"),
     "model 'vae': parameter 'latent_dim' ({file}, line 13) must be int, got bool True"),
    ("choice out of its set", mutate(replace="[metrics.mmd]\n#MMD => [metrics.outlier_auroc]\nscore = 'energy'"),
     "metric 'outlier_auroc': parameter 'score' ({file}, line 21) must be one of 'auto', 'anomaly_score', 'nll', "
     "'recon', got str 'energy'"),
    ("unknown sampler parameter", mutate(sampler="stepsize = 0.1"),
     "sampler 'langevin': unknown parameter 'stepsize' ({file}, line 18); valid parameters: n_steps, step_size, "
     "noise, persistent"),
    ("unknown parameter in a role", mutate(sampler="prior = { stepsize = 0.1 }"),
     "sampler 'langevin' role 'prior': unknown parameter 'stepsize' ({file}, line 18); valid parameters: n_steps, "
     "step_size, noise, persistent"),
    ("misspelt sampler role", mutate(sampler="posteriour = { n_steps = 3 }"),
     "[samplers.langevin] role 'posteriour' ({file}, line 18): no model paired with this sampler asks for it; "
     "roles asked: posterior, prior (did you mean 'posterior'?)"),
    ("samplers not a list", mutate(lebm='samplers = "langevin"'),
     "[models.lebm] 'samplers' ({file}, line 15) must list sampler entries of this suite (langevin), got 'langevin'"),
    ("sampler not in the suite", mutate(lebm='samplers = ["hmc"]'),
     "[models.lebm] 'samplers' ({file}, line 15) must list sampler entries of this suite (langevin), got ['hmc']"),
    ("empty sampler list", mutate(lebm="samplers = []"),
     "[models.lebm] 'samplers' ({file}, line 15) must name each sampler entry once and at least one, got []"),
    ("repeated sampler", mutate(lebm='samplers = ["langevin", "langevin"]'),
     "[models.lebm] 'samplers' ({file}, line 15) must name each sampler entry once and at least one, got "
     "['langevin', 'langevin']"),
    ("samplers on a model without dynamics", mutate(vae='samplers = ["langevin"]'),
     "[models.vae] 'samplers' ({file}, line 13): model 'vae' has no dynamics, so no sampler applies to it; "
     "remove the key"),
    ("aliases with identical settings", mutate(lebm="[models.lebm2]\ncomponent = 'lebm'"),
     "[models.lebm2] ({file}, line 15) has the same component and settings as [models.lebm]: they would be one "
     "cell; remove one or change a setting"),
    ("data set aliases with identical settings", mutate(dataset="[datasets.ring]\ncomponent = 'gmm8'"),
     "[datasets.ring] ({file}, line 10) has the same component and settings as [datasets.gmm8]: they would be one "
     "cell; remove one or change a setting"),
    ("unknown metric parameter", mutate(mmd="n_sample = 3"),
     "metric 'mmd': unknown parameter 'n_sample' ({file}, line 21); valid parameters: n_samples, n_reference, "
     "split, variances, multipliers, unbiased, chunk_size, batch_size"),
    ("metric parameter as text", mutate(mmd='n_samples = "many"'),
     "metric 'mmd': parameter 'n_samples' ({file}, line 21) must be int, got str 'many'"),
    # declared ranges (annotated-types on the factories' signatures)
    ("negative latent size", mutate(vae="latent_dim = -3"),
     "model 'vae': parameter 'latent_dim' ({file}, line 13) must be > 0, got -3"),
    ("zero latent size", mutate(lebm="latent_dim = 0"),
     "model 'lebm': parameter 'latent_dim' ({file}, line 15) must be > 0, got 0"),
    ("zero hidden width", mutate(vae="hidden = [64, 0]"),
     "model 'vae': parameter 'hidden'[1] ({file}, line 13) must be > 0, got 0"),
    ("infinite noise", mutate(vae="obs_std = inf"),
     "model 'vae': parameter 'obs_std' ({file}, line 13) must be finite, got inf"),
    ("nan learning rate", mutate(vae="lr = nan"),
     "model 'vae': parameter 'lr' ({file}, line 13) must be finite, got nan"),
    ("no samples", mutate(mmd="n_samples = 0"),
     "metric 'mmd': parameter 'n_samples' ({file}, line 21) must be >= 2, got 0"),
    ("empty kernel list", mutate(mmd="variances = []"),
     "metric 'mmd': parameter 'variances' ({file}, line 21) must not be empty, got []"),
    ("no test examples", mutate(mmd="[metrics.loglik]\nn_examples = 0"),
     "metric 'loglik': parameter 'n_examples' ({file}, line 22) must be > 0, got 0"),
    ("negative importance samples", mutate(mmd="[metrics.loglik]\nk = -1"),
     "metric 'loglik': parameter 'k' ({file}, line 22) must be > 0, got -1"),
    ("zero metric batch", mutate(mmd="batch_size = 0"),
     "metric 'mmd': parameter 'batch_size' ({file}, line 21) must be > 0, got 0"),
    ("negative sampler steps", mutate(sampler="n_steps = -1"),
     "sampler 'langevin': parameter 'n_steps' ({file}, line 18) must be >= 0, got -1"),
    ("negative steps in a role", mutate(sampler="prior = { n_steps = -1 }"),
     "sampler 'langevin' role 'prior': parameter 'n_steps' ({file}, line 18) must be >= 0, got -1"),
    ("acceptance target above 1", mutate(replace="[samplers.langevin] => [samplers.hmc]", lebm='samplers = ["hmc"]',
                                         sampler="target_accept = 1.5"),
     "sampler 'hmc': parameter 'target_accept' ({file}, line 18) must be in (0, 1), got 1.5"),
    ("zero data-set spread", mutate(dataset="std = 0"),
     "dataset 'gmm8': parameter 'std' ({file}, line 10) must be > 0, got 0"),
    ("bad list element", mutate(vae='hidden = [64, "x"]'),
     "model 'vae': parameter 'hidden' ({file}, line 13) must be tuple[int, ...] ('hidden'[1] is str 'x', not "
     "int), got list [64, 'x']"),
]

# Settings that only the data can refute: checked when the grid is planned, before training.
DATA_CASES: list[tuple[str, str, str]] = [
    ("held-out class beyond the classes", mutate(mmd="[metrics.outlier_auroc]\nclasses = [99]"),
     "[metrics.outlier_auroc] on data set 'gmm8': held-out classes [99] are not classes of data set 'gmm8' (0..7)"),
    ("negative held-out class", mutate(mmd="[metrics.outlier_auprc]\nclasses = [-1]"),
     "metric 'outlier_auprc': parameter 'classes'[0] ({file}, line 22) must be >= 0, got -1"),
    ("split name typo", mutate(mmd="[metrics.recon_mse]\nsplit = 'tset'"),
     "[metrics.recon_mse] on data set 'gmm8': split must be 'train', 'val' or 'test', got 'tset'"),
    ("more labels per class than the data has", mutate(mmd="[metrics.accuracy]\nn_labels_per_class = 100000"),
     "[metrics.accuracy] on data set 'gmm8': n_labels_per_class = 100000, but the training split of 'gmm8' holds "
     "only 476 examples of its rarest class"),
]


def _error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("benchbed: error: ")
    return err[len("benchbed: error: "):-1]


@pytest.mark.parametrize(("case", "text", "message"), SUITE_CASES + DATA_CASES, ids=[c[0] for c in
                                                                                   SUITE_CASES + DATA_CASES])
def test_a_bad_suite_is_refused_before_any_training(tmp_path: Path, capsys, case: str, text: str,
                                                    message: str) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(text, encoding="utf-8")
    expected = f"{suite}: " + message.replace("{file}", str(suite))
    registry = load_registry(strict=True)  # the lists name whatever is installed, in sorted order
    for kind in ("model", "metric", "dataset", "sampler"):
        expected = expected.replace("{" + kind + "s}", ", ".join(sorted(registry.names(kind))))
    assert _error(capsys, ["validate", str(suite)]) == expected
    store = tmp_path / "store.sqlite"
    assert _error(capsys, ["run", str(suite), "--store", str(store), "--no-bars"]) == expected
    assert not store.exists() and not (tmp_path / "checkpoints").exists(), "something was stored or trained"


def test_the_base_suite_is_valid(tmp_path: Path, capsys) -> None:
    """The mutations start from a valid suite: every error above is the mutation's."""
    suite = tmp_path / "suite.toml"
    suite.write_text(BASE)
    assert cli.main(["validate", str(suite)]) == 0


# -- the command line itself ---------------------------------------------------------------------

CLI_CASES: list[tuple[str, list[str], str]] = [
    ("unknown --device", ["--device", "tpu"], "--device: device 'tpu' is not one of auto, cpu, mps, cuda, cuda:N"),
    ("--device as a number", ["--device", "0"], "--device: device '0' is not one of auto, cpu, mps, cuda, cuda:N"),
    ("--out naming a file", ["--out", "{tmp}/afile"], "--out {tmp}/afile: is a file, not a folder for the tables"),
    ("--set of an unknown component", ["--set", "models.vae.component=nosuch"],
     "{tmp}/suite.toml: [models.vae] (--set models.vae.component=nosuch): unknown model 'nosuch' (registered models: "
     "{models})"),
]


@pytest.mark.parametrize(("case", "args", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_values(tmp_path: Path, capsys, case: str, args: list[str], message: str) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(BASE)
    (tmp_path / "afile").write_text("x")
    argv = ["run", str(suite), "--store", str(tmp_path / "s.sqlite"), *(a.replace("{tmp}", str(tmp_path))
                                                                        for a in args)]
    from benchbed.plugins import load_registry

    models = ", ".join(sorted(load_registry().names("model")))
    assert _error(capsys, argv) == message.replace("{tmp}", str(tmp_path)).replace("{models}", models)
    assert not (tmp_path / "s.sqlite").exists()


# -- damaged stores, result files and data files ---------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _mnist(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in {"train-images-idx3-ubyte": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
                        "train-labels-idx1-ubyte": (np.arange(40) % 10).astype(np.uint8),
                        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
                        "t10k-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8)}.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(_idx(array)))


def _damage_store(kind: str) -> Callable[[Path], tuple[list[str], str]]:
    def make(tmp: Path) -> tuple[list[str], str]:
        store = tmp / "store.sqlite"
        if kind == "garbage":
            store.write_bytes(b"this is not a database" * 100)
            return ["--store", str(store)], f"cannot open result store {store}: file is not a database"
        if kind == "truncated":
            from benchbed.store import Store

            Store(tmp / "whole.sqlite").close()
            store.write_bytes((tmp / "whole.sqlite").read_bytes()[:1000])
            return ["--store", str(store)], f"cannot open result store {store}: "
        if kind == "directory":
            store.mkdir()
            return ["--store", str(store)], f"cannot open result store {store}: unable to open database file"
        if kind == "under a file":
            (tmp / "f").write_text("x")
            return ["--store", str(tmp / "f" / "s.sqlite")], (f"cannot create result store {tmp / 'f' / 's.sqlite'}"
                                                              f": {tmp / 'f'} is a file, not a folder")
        import sqlite3

        from benchbed.store import Store

        Store(store).close()
        with sqlite3.connect(store) as db:
            db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        return ["--store", str(store)], f"store {store}: schema version 99, this benchbed reads 3"

    return make


def _damage_runs(content: str | bytes | None, message: str) -> Callable[[Path], tuple[list[str], str]]:
    def make(tmp: Path) -> tuple[list[str], str]:
        path = tmp / published.RUNS_FILE
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return [], message.replace("{path}", str(path))

    return make


HEADER = '{"format":"benchbed-runs","runs":1,"suite":"fz","version":1}'
RUN = ('{"metrics":[],"preview":null,"run":{"config":{},"curves":[],"dataset":"gmm8","kind":"model","model":"vae",'
       '"model_component":"vae","provenance":{},"run_id":"0123456789abcdef","sampler":"","seed":0,'
       '"started_at":1.0,"status":"ok","suite":"fz"}}')

STORE_AND_FILE_CASES: list[tuple[str, Callable[[Path], tuple[list[str], str]]]] = [
    ("store: not a database", _damage_store("garbage")),
    ("store: a directory", _damage_store("directory")),
    ("store: under a file", _damage_store("under a file")),
    ("store: newer schema", _damage_store("schema")),
    ("store: truncated", _damage_store("truncated")),
    ("runs.jsonl: not JSON", _damage_runs(HEADER + "\n{not json\n",
                                          "published results {path}: line 2 is not JSON (Expecting property name "
                                          "enclosed in double quotes, column 2); restore the file (e.g. `git "
                                          "checkout -- {path}`)")),
    ("runs.jsonl: truncated line", _damage_runs(HEADER + "\n" + RUN[:60] + "\n",
                                                "published results {path}: line 2 is not JSON (")),
    ("runs.jsonl: no header", _damage_runs(RUN + "\n", "published results {path}: not a benchbed-runs file (its first "
                                                       "line: " + repr(RUN if len(RUN) <= 200 else RUN[:200] +
                                                                       f"... ({len(RUN)} characters)") + ")")),
    ("runs.jsonl: newer version", _damage_runs(HEADER.replace('"version":1', '"version":2') + "\n",
                                               "published results {path}: format version 2, this benchbed reads "
                                               "version 1")),
    ("runs.jsonl: a folder", _damage_runs(None, "published results {path} is not a file")),
    ("runs.jsonl: empty", _damage_runs("", "published results {path}: not a benchbed-runs file (its first line: '')")),
    ("runs.jsonl: not UTF-8", _damage_runs(b"\xff\xfe\x00", "published results {path} is not UTF-8 text")),
    ("runs.jsonl: record without run", _damage_runs(HEADER + '\n{"metrics": []}\n',
                                                    "published results {path}: line 2: not a run record (missing "
                                                    "'run')")),
    ("runs.jsonl: run missing keys", _damage_runs(HEADER + '\n{"run": {"run_id": "ab"}}\n',
                                                  "published results {path}: line 2: run lacks "
                                                  "['config', 'curves', 'dataset', 'kind', 'model', "
                                                  "'model_component', 'provenance', 'sampler', 'seed', "
                                                  "'started_at', 'status', 'suite']")),
    ("runs.jsonl: preview not base64", _damage_runs(HEADER + "\n" + RUN.replace('"preview":null',
                                                                                '"preview":"%%%"') + "\n",
                                                    "published results {path}: line 2: preview is not base64 "
                                                    "(Only base64 data is allowed)")),
]


@pytest.mark.parametrize(("case", "make"), STORE_AND_FILE_CASES, ids=[c[0] for c in STORE_AND_FILE_CASES])
def test_damaged_stores_and_result_files(tmp_path: Path, capsys, case: str, make) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(BASE)
    args, message = make(tmp_path)
    err = _error(capsys, ["run", str(suite), "--no-bars", *args])
    assert message in err, err
    assert not (tmp_path / "checkpoints").exists()


def _data_case(damage: Callable[[Path], str]) -> Callable[[Path], str]:
    return damage


def _truncate(tmp: Path) -> str:
    path = tmp / "data" / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    return f"cannot read {path}"


def _not_idx(tmp: Path) -> str:
    path = tmp / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"<html>not found</html>"))
    return f"{path} is not an unsigned-byte IDX file"


def _missing(tmp: Path) -> str:
    (tmp / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    return "data set 'mnist': files not found"


def _disagree(tmp: Path) -> str:
    (tmp / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(3, np.uint8))))
    return "do not match labels of shape"


def _empty(tmp: Path) -> str:
    path = tmp / "data" / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"")
    return f"{path} is not an unsigned-byte IDX file"


def _no_folder(tmp: Path) -> str:
    shutil.rmtree(tmp / "data" / "mnist")
    return "data set 'mnist': files not found"


DATA_FILE_CASES = [("truncated IDX", _truncate), ("not an IDX file", _not_idx), ("a file missing", _missing),
                   ("images and labels disagree", _disagree), ("empty file", _empty), ("no data folder", _no_folder)]


@pytest.mark.parametrize(("case", "damage"), DATA_FILE_CASES, ids=[c[0] for c in DATA_FILE_CASES])
def test_damaged_data_files_are_named_by_validate(tmp_path: Path, capsys, case: str, damage) -> None:
    _mnist(tmp_path / "data" / "mnist")
    suite = tmp_path / "suite.toml"
    suite.write_text(mutate(replace=f"[datasets.gmm8] => [datasets.mnist]\nroot = '{tmp_path / 'data'}'\n"
                                    "verify = false\nn_val = 10"))
    assert cli.main(["validate", str(suite)]) == 0 or case == "unreachable"
    needle = damage(tmp_path)
    err = _error(capsys, ["validate", str(suite)])
    assert err.startswith(f"{suite}: [datasets.mnist] cannot be loaded: ") and needle in err, err


def test_fuzz_counts() -> None:
    """The issue asks for at least 60 bad suite files and 20 damaged data or store cases."""
    assert len(SUITE_CASES) + len(DATA_CASES) + len(CLI_CASES) >= 60
    assert len(STORE_AND_FILE_CASES) + len(DATA_FILE_CASES) >= 20
