"""Correction for users: the ``Corrector`` API, batched generate / select / auto modes, the guard, file correction.

One concept per module:

- ``config``: ``InferConfig``, the typed settings of a corrector (mode, beams, n-best size, token budgets).
- ``correction``: ``Correction``, the result of correcting one record.
- ``prompt``: the token budget around the task's own prompt (``neko.tasks``), shared with training.
- ``generate``: batched autoregressive decoding (length-sorted, left-padded, KV cache).
- ``select``: scoring every hypothesis (prompt run once, n-best as a token trie) and returning the best one.
- ``guard``: falling back to a hypothesis when the generated text strays; calibration; harmful-edit rate.
- ``corrector``: ``Corrector``, the public API (``neko.Corrector``).
- ``loading``: reading a `neko train` checkpoint or a `neko export` folder.
- ``readers``: input formats of ``neko correct`` (JSONL records, HyPoradise JSON, plain text).
- ``files``: ``correct_file``, lossless and resumable correction of a file.

Nothing here imports torch at module level except the modules that run the model.
"""
