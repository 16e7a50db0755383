"""The autoattack family: defaults per dataset family and norm, the optional extra, robust
accuracy against rbg's PGD and the clean accuracy, the CLI cell, and the state file."""

import dataclasses
import json
import shutil
import sys

import pandas as pd
import pytest
import torch

from robustbench_graph import load_dataset, load_run
from robustbench_graph.config import ImageSubset
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations import EvalContext, family_class
from robustbench_graph.perturbations import autoattack as aa_module

from conftest import cli, counted_passes

CPU = torch.device("cpu")
NEEDS_EXTRA = "pyautoattack (the autoattack extra) is not installed"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread here: the attacks' many small ops on 8x8 digits gain nothing from
    two, and on a busy 2-core machine two threads thrash (measured: 4 s against 100 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _extra():
    pytest.importorskip("pyautoattack", reason=NEEDS_EXTRA)


def _family(family="grey", **settings):
    cls = family_class("autoattack")
    return cls(cls.resolve({k: str(v) for k, v in settings.items()}, family))


def _ctx(run_dir, n, work_dir=None):
    run = load_run(run_dir, CPU)
    test = load_dataset("digits", False)
    idx = torch.tensor(ImageSubset(n).indices(len(test)))
    return EvalContext(run.model, test.subset(idx), CPU, run.name, batch_size=20,
                       test_indices=idx, work_dir=work_dir)


def _accuracy(family, ctx, eps=None):
    cells = family.cells(ImageSubset())
    cell = cells[0] if eps is None else next(c for c in cells if c.param_value == eps)
    (value,) = [r.value for r in family.measure(cell, ctx) if r.metric == "accuracy"]
    return value


# --- settings, no extra needed -------------------------------------------------------------
@pytest.mark.parametrize(("family", "norm", "eps"), [
    ("grey", "linf", 0.3), ("grey", "l2", 2.0), ("colour", "linf", 8 / 255),
    ("colour", "l2", 0.5)])
def test_the_default_eps_depends_on_the_dataset_family_and_the_norm(family, norm, eps):
    cls = family_class("autoattack")
    settings = cls.resolve({"norm": norm}, family)
    assert settings.eps == (eps,)
    assert settings.version == "standard" and settings.seed == 0
    # An explicit eps is kept, whatever the norm's default.
    assert cls.resolve({"norm": norm, "eps": "0.1,0.2"}, family).eps == (0.1, 0.2)


def test_the_settings_are_checked():
    cls = family_class("autoattack")
    for raw, message in [({"norm": "l1"}, "unknown AutoAttack norm"),
                         ({"version": "plus"}, "unknown AutoAttack version"),
                         ({"eps": "1.5"}, "out of range"),
                         ({"seed": "-1"}, "seed must be")]:
        with pytest.raises(RbgError, match=message):
            cls.resolve(raw, "grey")
    assert cls.resolve({"norm": "l2", "eps": "1.5"}, "grey").eps == (1.5,)
    assert cls.order == family_class("pgd").order + 5 < family_class("deepfool").order


def test_a_missing_extra_is_one_clear_rbg_error_when_built_not_at_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)  # import raises ImportError
    cls = family_class("autoattack")
    settings = cls.resolve({}, "grey")  # resolving needs no extra (rbg list, check_suite)
    for build in (aa_module.load_autoattack, lambda: cls(settings)):
        with pytest.raises(RbgError) as err:
            build()
        assert str(err.value) == ("the autoattack perturbation needs the optional extra: pip "
                                  "install 'robustbench_graph[autoattack]'")
        assert "\n" not in str(err.value)
    listed = cli("list", "perturbations")
    assert listed.exit_code == 0, listed.output
    assert "autoattack" in listed.output


# --- with the extra ------------------------------------------------------------------------
def test_cells_hold_concrete_eps_and_the_seed_is_in_the_fingerprint():
    _extra()
    cells = _family("colour").cells(ImageSubset())
    assert [(c.param, c.param_value) for c in cells] == [("eps", pytest.approx(8 / 255))]
    assert cells[0].settings["seed"] == 0 and "eps" not in cells[0].settings
    explicit = _family("colour", eps=8 / 255).cells(ImageSubset())
    assert explicit[0].fingerprint == cells[0].fingerprint
    seeded = _family("colour", seed=1).cells(ImageSubset())
    cheap = _family("colour", version="cheap").cells(ImageSubset())
    assert len({cells[0].fingerprint, seeded[0].fingerprint, cheap[0].fingerprint}) == 3


def test_cheap_runs_apgd_ce_and_apgd_t_with_three_targets():
    _extra()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10)).eval()
    cheap = _family(version="cheap").build(model, 0.1, "apgd-t", CPU, 10)
    assert cheap.attacks_to_run == ["apgd-t"] and cheap.version == "custom"
    assert cheap.apgd.n_restarts == 1 and cheap.apgd.n_iter == 100
    assert cheap.apgd_targeted.n_target_classes == 3 and cheap.apgd_targeted.n_restarts == 1
    standard = _family().build(model, 0.1, "fab-t", CPU, 10)
    assert standard.version == "standard" and standard.fab.n_target_classes == 9
    assert standard.apgd_targeted.n_target_classes == 9 and standard.square.n_queries == 5000
    few = _family().build(model, 0.1, "apgd-t", CPU, 4)  # target classes capped at 4 - 1
    assert few.apgd_targeted.n_target_classes == 3 and few.fab.n_target_classes == 3
    assert aa_module.ATTACKS == {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
                                 "cheap": ("apgd-ce", "apgd-t")}


N = 40  # digits test images of the measured tests (two windows of 20)
EPS = 0.1


@pytest.fixture(scope="module")
def cheap(digits_run):
    """The cheap robust accuracy at EPS on N digits images, outside a run folder."""
    _extra()
    return _accuracy(_family(eps=EPS, version="cheap"), _ctx(digits_run, n=N))


def test_cheap_robust_accuracy_is_at_most_pgds_which_is_at_most_the_clean(digits_run, cheap):
    ctx = _ctx(digits_run, n=N)
    clean = _accuracy(family_class("clean")(), ctx)
    cls = family_class("pgd")
    pgd = _accuracy(cls(cls.resolve({"eps": str(EPS)}, "grey")), ctx)
    assert cheap <= pgd <= clean
    assert cheap < clean  # the attack does something at this budget


def test_rbg_attack_writes_accuracy_rows_and_leaves_no_state_file(tmp_path, digits_run):
    _extra()
    run = tmp_path / digits_run.name
    shutil.copytree(digits_run, run)
    result = cli("attack", run, "--suite", "autoattack", "-p", "autoattack.version=cheap",
                 "-p", "autoattack.eps=0.1", "--samples", "20", "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "results.csv")
    rows = table[table.perturbation == "autoattack"]
    assert list(rows.param_value) == [0.1]
    assert set(rows.metric) == {"accuracy"} and set(rows.param) == {"eps"}
    assert (rows.n == 20).all() and rows.value.between(0, 1).all()
    assert not list(run.glob(".autoattack-*"))
    again = cli("attack", run, "--suite", "autoattack", "-p", "autoattack.version=cheap",
                "-p", "autoattack.eps=0.1", "--samples", "20", "--device", "cpu")
    assert again.exit_code == 0, again.output  # the cells are reused, same fingerprints
    assert pd.read_csv(run / "results.csv").equals(table)


def test_the_state_file_is_kept_during_the_cell_and_removed_after(tmp_path, digits_run,
                                                                  monkeypatch, cheap):
    ctx = _ctx(digits_run, n=N, work_dir=tmp_path)
    family = _family(eps=EPS, version="cheap")
    (cell,) = family.cells(ImageSubset())
    path = family.state_path(cell, ctx)
    assert path.parent == tmp_path and cell.fingerprint in path.name and "eps=0.1" in path.name
    seen = []
    build = type(family).build

    def spy(self, *args, **kwargs):
        state = json.loads(path.read_text())
        seen.append((state["fingerprint"], state["done"], len(state["robust"])))
        return build(self, *args, **kwargs)

    monkeypatch.setattr(type(family), "build", spy)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    value = _accuracy(family, ctx)
    assert torch.equal(torch.rand(3), expected)  # the global generator is left as it was
    assert all(p.requires_grad and p.grad is None for p in ctx.model.parameters())
    assert seen and all(f == cell.fingerprint and n == N for f, _, n in seen)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    assert not path.exists() and not list(tmp_path.iterdir())
    # Outside a run folder there is no state file, and the number is the same (seeded).
    assert family.state_path(cell, _ctx(digits_run, n=N)) is None
    assert value == cheap


def test_a_cell_resumes_from_its_state_file_and_ignores_a_foreign_one(tmp_path, digits_run,
                                                                     cheap):
    ctx = _ctx(digits_run, n=N, work_dir=tmp_path)
    family = _family(eps=EPS, version="cheap")
    (cell,) = family.cells(ImageSubset())
    path = family.state_path(cell, ctx)
    identity = aa_module._identity(cell, ctx.labels)
    units = len(aa_module.ATTACKS["cheap"]) * ctx.n_batches()
    with torch.inference_mode():  # robust flags are checked against the clean predictions
        clean = ctx.model.eval()(ctx.images).argmax(1) == ctx.labels
    robust = clean.clone()  # a normal tensor, outside inference mode
    robust[10:] = False  # every attack already done: the flags are the result
    aa_module._write_state(path, identity, robust, units)
    assert _accuracy(family, ctx) == int(robust.sum()) / N
    assert not path.exists()
    foreign = {**identity, "labels": "0" * 16}  # other images: ignored, computed afresh
    aa_module._write_state(path, foreign, robust, units)
    assert _accuracy(family, ctx) == cheap
    assert not path.exists()


def test_settings_fields_all_have_a_meaning():
    for field in dataclasses.fields(family_class("autoattack").Settings):
        assert field.metadata.get("help"), field.name


def test_suite_all_leaves_out_a_family_whose_extra_is_missing(monkeypatch, digits_run,
                                                              tmp_path):
    from robustbench_graph.perturbations import left_out_note, suite_names, suite_order

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)  # the shared run stays without results

    assert "autoattack" in suite_names("all")
    monkeypatch.setattr(family_class("autoattack"), "requires", ("no_such_module_rbg", "x"))
    assert "autoattack" in suite_order() and "autoattack" not in suite_names("all")
    assert left_out_note("all") == ("--suite all leaves out autoattack: install "
                                    "'robustbench_graph[x]'")
    assert left_out_note("clean,pgd") is None
    result = cli("attack", "--runs", run, "--suite", "all", "--samples", "4",
                 "-p", "gaussian.draws=1", "-p", "gaussian-iid.draws=1",
                 "-p", "dropout.repeats=1", "-p", "deepfool.samples=2",
                 "-p", "lipschitz.draws=1", "-p", "lipschitz.images=20",
                 "-p", "curvature.probes=1", "-p", "mnist-c.corruption=contrast",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "note: --suite all leaves out autoattack" in result.output


@pytest.mark.parametrize("version", ["cheap", "standard"])
def test_passes_count_what_a_counted_run_does(digits_run, version):
    """At the default budget APGD-CE leaves no image robust: its 100 steps and its first
    gradient are the backwards, exactly, and the later attacks cost nothing; pyautoattack's
    own checks add a few forwards."""
    _extra()
    run = load_run(digits_run, CPU)
    test = load_dataset("digits", False)
    with torch.no_grad():
        right = torch.nonzero(run.model(test.float()).argmax(1) == test.labels).flatten()
    family = _family(version=version)
    forward, backward = counted_passes(family, run, test.subset(right[:60]))
    declared = family.passes(60)
    assert backward == declared[1] == 60 * 101
    assert declared[0] <= forward <= 1.2 * declared[0]
