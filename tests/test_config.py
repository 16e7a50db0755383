import pytest

from robustbench_graph.config import TrainConfig, parse_seeds, stable_seed
from robustbench_graph.errors import RbgError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0-9", list(range(10))), ("0,3,5", [0, 3, 5]), ("3", [3]), ("0-2,7", [0, 1, 2, 7]),
     (" 1 - 2 , 2 ", [1, 2]), ("5,1", [1, 5])],
)
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("bad", ["", "a", "1-", "-1", "3-1", "1,,2", "1.5", "0-9x"])
def test_parse_seeds_rejects_malformed(bad):
    with pytest.raises(RbgError, match="seed"):
        parse_seeds(bad)


def test_stable_seed_is_stable_and_distinct():
    assert stable_seed("run", "gaussian", 15.0, 0) == stable_seed("run", "gaussian", 15.0, 0)
    assert stable_seed("run", "gaussian", 15.0, 0) != stable_seed("run", "gaussian", 15.0, 1)
    # a fixed value guards against accidental changes of the derivation
    assert stable_seed("a", 1) == stable_seed("a", "1")


def test_schedule_presets():
    grey = TrainConfig(dataset="mnist5k", epochs=5).resolved()
    assert (grey.lr, grey.lr_milestones, grey.lr_factor) == (0.05, (4,), 0.1)
    cifar = TrainConfig(dataset="cifar10", epochs=100).resolved()
    assert (cifar.lr, cifar.lr_milestones, cifar.lr_factor) == (0.1, (50,), 0.01)
    own = TrainConfig(dataset="mnist5k", epochs=10, lr=0.2, lr_milestones=(3, 6)).resolved()
    assert (own.lr, own.lr_milestones, own.lr_factor) == (0.2, (3, 6), 0.1)


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"batch_size": 0}, {"lr": -1.0}, {"momentum": 1.0},
               {"epochs": 5, "lr_milestones": (9,)}, {"width": 0}, {"grad_clip": 0.0}],
)
def test_config_validation(kwargs):
    with pytest.raises(RbgError):
        TrainConfig(**kwargs).validate()


def test_config_roundtrip():
    cfg = TrainConfig(dataset="digits", lr_milestones=(2,), loss_options={"a": 1})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("changes", [{"width": 100000}, {"width": 32.5}, {"feature_dim": 0},
                                     {"feature_dim": -1}])
def test_architecture_sizes_are_checked(changes: dict) -> None:
    with pytest.raises(RbgError, match="must be an integer in 1.."):
        TrainConfig(**changes).validate()
