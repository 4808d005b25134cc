"""A tiny embedded dataset (built once per session) for the training tests."""

import pytest

from tests.data.conftest import run_data_stages, write_params


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_data_stages(write_params(out), out, monkeypatch)
