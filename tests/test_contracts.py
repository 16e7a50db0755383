"""Contract tests parametrised over the registries: a new loss, model or perturbation is
tested by registering it, with no edit here."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from robustbench_graph.config import ImageSubset
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.errors import RbgError
from robustbench_graph.losses import LOSSES, create_loss, method_name, resolved_options
from robustbench_graph.models import MODELS, capture, create_model
from robustbench_graph.models.heads import attach_head
from robustbench_graph.perturbations import (
    FAMILIES,
    PERTURBATIONS,
    EvalContext,
    family_class,
    suite_names,
)
from robustbench_graph.settings import describe_fields
from robustbench_graph.train import loss_head

from conftest import RecordingModel

GREY = DatasetInfo("grey-toy", 10, (1, 12, 12), (0.5,), (0.25,), False, False)
COLOUR = DatasetInfo("colour-toy", 10, (3, 12, 12), (0.5, 0.4, 0.3), (0.25, 0.2, 0.3), True,
                     False)
CPU = torch.device("cpu")
# Integer settings that only set how much work is done, made small so that every family runs
# in well under a second; every other setting keeps its default.
SMALL = {"draws": 2, "repeats": 2, "samples": 12, "steps": 3, "restarts": 1,
         "probes": 2, "noise_draws": 2, "power_iterations": 2,
         "version": "cheap", "images": 12, "corruption": "contrast,gaussian_noise",
         "severity": "0,2", "adapt": "true", "n": 50, "n0": 10}


def _small_model(info, name="smallcnn"):
    torch.manual_seed(0)
    width = None if name == "smallcnn" else 4
    return create_model(name, info, width=width).eval()


def _data(info, n=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *info.input_shape), generator=gen, dtype=torch.uint8)
    return ImageData(images, torch.randint(0, 10, (n,), generator=gen), 255.0, info)


def _family(name, family="grey"):
    cls = family_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Settings)}
    small = {k: str(v) for k, v in SMALL.items() if k in fields}
    return cls(cls.resolve(small, family))


# --- perturbations ------------------------------------------------------------------------
PERTURBATION_NAMES = PERTURBATIONS.names()


@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbation_declares_its_settings_and_metrics(name):
    cls = family_class(name)
    assert dataclasses.is_dataclass(cls.Settings)
    assert cls.Settings.__dataclass_params__.frozen
    for field, _type, _default, meaning in describe_fields(cls.Settings):
        assert meaning, f"{name}.{field} has no help text"
    metrics = {m.name: m for m in cls.metrics}
    assert cls.headline in metrics and metrics[cls.headline].better in ("higher", "lower")
    assert len(metrics) == len(cls.metrics)
    assert cls.description and cls.order >= 0 and cls.version >= 1
    for family in cls.presets:
        assert family in FAMILIES
    assert name in suite_names("all")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbation_defaults_resolve_to_json_cells_with_stable_fingerprints(name, family):
    cls = family_class(name)
    settings = cls.resolve({}, family)
    cells = cls(settings).cells(ImageSubset())
    assert cells
    again = cls(cls.resolve({}, family)).cells(ImageSubset())
    assert [c.fingerprint for c in cells] == [c.fingerprint for c in again]
    for cell in cells:
        assert cell.perturbation == name and cell.version == cls.version
        json.dumps(cell.settings)  # JSON-ready
        assert len(cell.fingerprint) == 12
    assert len({c.key for c in cells}) == len(cells)
    other = cls(settings).cells(ImageSubset(samples=7))
    if cls.on_test_images:
        assert {c.fingerprint for c in other}.isdisjoint(c.fingerprint for c in cells)
    else:  # measured on the training images: the test-image choice changes nothing
        assert [c.fingerprint for c in other] == [c.fingerprint for c in cells]


@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbation_refuses_unknown_settings(name):
    with pytest.raises(RbgError, match="unknown setting 'no_such_setting'"):
        family_class(name).resolve({"no_such_setting": "1"}, "grey")


@pytest.mark.parametrize("info", [GREY, COLOUR], ids=["grey", "colour"])
@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbation_measures_within_its_contract(name, info):
    model = _small_model(info)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the base class must evaluate in eval mode and restore the mode
    bounded = RecordingModel(model)
    ctx = EvalContext(bounded, _data(info), CPU, "contract-run", batch_size=10)
    family = _family(name, "grey" if info is GREY else "colour")
    declared = {m.name: m for m in family.metrics}
    for cell in family.cells(ImageSubset())[:2]:
        rows = family.measure(cell, ctx)
        assert rows and model.training
        assert {r.metric for r in rows} <= set(declared)
        for r in rows:
            assert r.n >= 0 and isinstance(r.repeat, int)
            assert math.isnan(r.value) or math.isfinite(r.value)
            if declared[r.metric].percent and not math.isnan(r.value):
                assert 0.0 <= r.value <= 1.0
        assert rows == family.measure(cell, ctx)  # seeded per (run, cell, repeat)
        repeats = {r.repeat for r in rows if r.metric == family.headline}
        assert repeats == set(range(family.repeats()))
    if family.space == "pixel":
        assert 0.0 <= bounded.lo and bounded.hi <= 1.0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --- models -------------------------------------------------------------------------------
@pytest.mark.parametrize("info", [GREY, COLOUR], ids=["grey", "colour"])
@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name, info):
    model = _small_model(info, name)
    x = torch.rand(3, *info.input_shape)
    with capture(model.relu_taps) as relus, capture(model.block_taps) as blocks:
        logits = model(x)
    assert logits.shape == (3, info.num_classes)
    # post-ReLU taps (post-GELU, whose minimum is -0.16997, in a smooth model)
    floor = -0.17 if any(isinstance(m, nn.GELU) for m in model.modules()) else 0.0
    assert relus and blocks and all((r >= floor).all() for r in relus)
    u = model.normalize(x)
    assert torch.allclose(model.forward_normalized(u), logits, atol=1e-5)
    assert torch.allclose(model.head(model.features(x)), logits, atol=1e-5)
    clone = _small_model(info, name)
    clone.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(clone(x), logits)
    assert model.laplacian_gamma > 0


# --- losses -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_contract(name):
    cls = LOSSES.get(name).factory
    assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen
    loss = create_loss(name, {}, GREY.num_classes)
    model = attach_head(_small_model(GREY), *loss_head(name, {})).train()
    data = _data(GREY, n=20)
    x, y = data.float(), data.labels
    out = loss(model, x, y)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.logits.shape == (20, GREY.num_classes)
    out.loss.backward()
    assert any(p.grad is not None for p in model.parameters())
    assert all(math.isfinite(v) for v in out.parts.values())
    loss.after_step(model)
    json.dumps(resolved_options(name, {}))
    assert method_name(name, {}) == name
    with pytest.raises(RbgError, match="unknown option"):
        create_loss(name, {"no_such_option": "1"}, GREY.num_classes)
