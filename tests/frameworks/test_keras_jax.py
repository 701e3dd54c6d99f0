"""LearningRateCallback in real `model.fit` runs on the JAX backend (in a subprocess)."""

import pytest

from ._keras_backend_tests import (  # noqa: F401 - collected here
    test_batch_mode_sets_every_batch_lr_of_the_service_and_of_keras_own_schedule,
    test_epoch_mode_trains_with_the_lr_of_the_service_and_of_in_process_keras,
    trained,
)


@pytest.fixture(scope="module")
def backend() -> str:
    return "jax"
