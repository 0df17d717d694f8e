"""The task-routed MoE model: base LMs, upcycling, NeKo routing, LoRA, checkpoints and export.

One concept per file; import the submodule you need (``neko.model.io.build_model``,
``neko.model.routing.task_routing``, ``neko.model.tiny.tiny_tokenizer``). Nothing heavy is imported here.
"""
