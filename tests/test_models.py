import pytest
import torch

from robustbench_graph.data import dataset_info
from robustbench_graph.models import MODELS, capture, create_model, transform_outputs

SHAPES = {"digits": (1, 8, 8), "mnist5k": (1, 28, 28), "cifar10": (3, 32, 32)}
EXPECTED_TAPS = {"smallcnn": (3, 3), "smallcnn-smooth": (3, 3), "preactresnet18": (17, 8),
                 "resnet18": (17, 8)}
GELU_MIN = -0.17  # min_x x Phi(x) = -0.16997 (smallcnn-smooth's taps are post-GELU)


def _model(name, dataset):
    width = None if name == "smallcnn" else 4
    torch.manual_seed(0)
    return create_model(name, dataset_info(dataset), width=width).eval()


@pytest.mark.parametrize("dataset", sorted(SHAPES))
@pytest.mark.parametrize("name", MODELS.names())
def test_taps_of_every_model(name, dataset):
    model = _model(name, dataset)
    x = torch.rand(3, *SHAPES[dataset])
    with capture(model.relu_taps) as relus, capture(model.block_taps) as blocks:
        logits = model(x)
    n_relu, n_block = EXPECTED_TAPS[name]
    assert logits.shape == (3, 10)
    assert len(relus) == n_relu and len(blocks) == n_block
    floor = GELU_MIN if name.endswith("-smooth") else 0.0
    assert all((r >= floor).all() for r in relus)  # post-ReLU (post-GELU)
    assert all(r.shape[0] == 3 for r in relus + blocks)
    feats = model.features(x)
    assert feats.ndim == 2 and torch.allclose(model.head(feats), logits, atol=1e-6)


@pytest.mark.parametrize("name", MODELS.names())
def test_normalisation_inside_the_model(name):
    model = _model(name, "mnist5k")
    x = torch.rand(2, 1, 28, 28)
    u = (x - model.normalize.mean) / model.normalize.std
    assert torch.allclose(model(x), model.forward_normalized(u), atol=1e-5)


@pytest.mark.parametrize("name", MODELS.names())
def test_transform_outputs_changes_blocks_and_cleans_up(name):
    model = _model(name, "mnist5k")
    x = torch.rand(2, 1, 28, 28)
    clean = model(x)
    with transform_outputs(model.block_taps, lambda t: t * 0):
        zeroed = model(x)
    assert not torch.allclose(zeroed, clean)
    assert torch.equal(model(x), clean)  # hooks removed


def test_feature_dim_and_width_options():
    info = dataset_info("mnist5k")
    assert create_model("smallcnn", info, feature_dim=30).features(torch.rand(1, 1, 28, 28)
                                                                   ).shape == (1, 30)
    m = create_model("resnet18", info, width=4, feature_dim=12)
    assert m.features(torch.rand(1, 1, 28, 28)).shape == (1, 12)
    p = create_model("preactresnet18", info, width=4)
    assert p.head.in_features == 32


@pytest.mark.parametrize("name, options, message", [
    ("preactresnet18", {"feature_dim": 16}, "has no --feature-dim option"),
    ("smallcnn", {"feature_dim": 0}, "--feature-dim must be a positive integer"),
    ("resnet18", {"width": -5}, "--width must be a positive integer"),
])
def test_options_a_model_does_not_take_or_bad_values_are_errors(name, options, message):
    from robustbench_graph.errors import RbgError

    with pytest.raises(RbgError, match=message):
        create_model(name, dataset_info("cifar10"), **options)


@pytest.mark.parametrize("name", MODELS.names())
def test_parseval_makes_every_declared_residual_sum_convex(name):
    from robustbench_graph.models.parseval import make_parseval

    torch.manual_seed(0)
    model = _model(name, "cifar10")
    blocks = model.residual_blocks
    assert (len(blocks) > 0) == (not name.startswith("smallcnn"))
    make_parseval(model, renorm=False)
    assert all(b.residual_weight == 0.5 for b in blocks)
    if blocks:  # the convex sum is computed: the output changes
        torch.manual_seed(0)
        plain = _model(name, "cifar10")
        x = torch.rand(2, 3, 32, 32)
        assert not torch.allclose(model(x), plain(x))
