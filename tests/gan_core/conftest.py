"""Fixtures shared by the gan_core tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: small networks on a shared 2-core machine run several
    times slower with two contending threads, and float reductions (hence GAN trajectories
    that a test compares or labels) depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
