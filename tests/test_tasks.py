"""The one prompt function per task and the token encoding shared by training and inference."""

from __future__ import annotations

from dataclasses import replace

import pytest

from neko.errors import ConfigError
from neko.records import Record
from neko.tasks import IGNORE_INDEX, TASKS, encode_example, encode_prompt, get_task
from neko.tasks.base import SHOWN_IN_ORDER

RECORDS = {
    "asr": Record(
        "a1",
        "asr",
        "atis",
        ["show me flights", "show me flight", "show me flights", "so me flights"],
        references=["show me flights"],
    ),
    "mt": Record(
        "m1",
        "mt",
        "wmt22_de-en",
        [f"candidate {i}" for i in range(9)],
        source="Das ist gut.",
        references=["That is good.", "This is good."],
    ),
    "ocr": Record("o1", "ocr", "overproof", ["Tlie  quick brown fox"], references=["The quick brown fox"]),
    "gec": Record("g1", "gec", "fce", ["He go to school ."], references=["He goes to school ."]),
}


@pytest.fixture(scope="module")
def tokenizer():
    from neko.model.tiny import tiny_tokenizer

    return tiny_tokenizer()


def test_prompts() -> None:
    assert TASKS["asr"].build_prompt(RECORDS["asr"]) == (
        "Correct the speech recognition n-best list.\n1. show me flights\n2. show me flight\n"
        "3. so me flights\nTranscript:"
    )
    mt = TASKS["mt"].build_prompt(RECORDS["mt"])
    assert mt.startswith("Improve the English translation.\nSource: Das ist gut.\n1. candidate 0\n")
    assert "4. candidate 3\nTranslation:" in mt and "candidate 4" not in mt
    assert (
        TASKS["ocr"].build_prompt(RECORDS["ocr"])
        == "Correct the OCR errors.\nOCR: Tlie  quick brown fox\nText:"
    )
    assert TASKS["gec"].build_prompt(RECORDS["gec"]) == (
        "Correct the grammar.\nSentence: He go to school .\nCorrection:"
    )
    assert TASKS["mt"].target(RECORDS["mt"]) == "That is good."


def test_compact_prompts_drop_the_instruction_and_the_numbers(tokenizer) -> None:
    assert TASKS["asr"].build_prompt(RECORDS["asr"], "compact") == (
        "ASR:\nshow me flights\nshow me flight\nso me flights\nTranscript:"
    )
    mt = TASKS["mt"].build_prompt(RECORDS["mt"], "compact")
    assert mt.startswith("Source: Das ist gut.\ncandidate 0\n") and mt.endswith("candidate 3\nTranslation:")
    assert TASKS["ocr"].build_prompt(RECORDS["ocr"], "compact") == "OCR: Tlie  quick brown fox\nText:"
    assert TASKS["gec"].build_prompt(RECORDS["gec"], "compact") == "Sentence: He go to school .\nCorrection:"
    for name, record in RECORDS.items():
        full, compact = (len(encode_prompt(tokenizer, record, style)) for style in ("full", "compact"))
        assert compact < full, name
        # The target is the same in both styles; only the prompt before it changes.
        a, b = (encode_example(tokenizer, record, 512, style) for style in ("full", "compact"))
        targets = [
            [t for t, y in zip(e["input_ids"], e["labels"], strict=True) if y != IGNORE_INDEX] for e in (a, b)
        ]
        assert targets[0] == targets[1]
    with pytest.raises(ConfigError, match="prompt style"):
        TASKS["asr"].build_prompt(RECORDS["asr"], "short")


def test_registry_matches_metrics() -> None:
    from neko.metrics import DEFAULT_NORMALIZERS, TASK_METRICS

    for name, task in TASKS.items():
        assert task.name == name
        assert list(task.metrics) == TASK_METRICS[name]
        assert task.normalizer == DEFAULT_NORMALIZERS[name]
    with pytest.raises(ConfigError, match="choose one of"):
        get_task("tts")


@pytest.mark.parametrize("task", list(RECORDS))
def test_encode_example_masks_the_prompt(tokenizer, task: str) -> None:
    record = RECORDS[task]
    prompt = encode_prompt(tokenizer, record)
    example = encode_example(tokenizer, record, max_len=512)
    ids, labels = example["input_ids"], example["labels"]
    assert ids[: len(prompt)] == prompt  # training sees exactly the inference prompt
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    assert ids[-1] == tokenizer.eos_token_id
    target = tokenizer.decode(ids[len(prompt) : -1])
    assert target == " " + TASKS[task].target(record)


def test_truncation_keeps_the_cue(tokenizer) -> None:
    record = RECORDS["mt"]
    example = encode_example(tokenizer, record, max_len=24)
    assert len(example["input_ids"]) == 24
    full = encode_example(tokenizer, record, max_len=1024)
    n_target = sum(1 for label in full["labels"] if label != IGNORE_INDEX)
    assert example["input_ids"][-n_target:] == full["input_ids"][-n_target:]  # short target kept whole
    prompt_end = full["input_ids"][-n_target - 8 : -n_target]
    assert example["input_ids"][-n_target - 8 : -n_target] == prompt_end  # the cue survives


def test_record_without_reference_is_an_error(tokenizer) -> None:
    record = Record("x", "gec", "fce", ["a"])
    with pytest.raises(ValueError, match="no reference"):
        encode_example(tokenizer, record, 64)


def test_mt_candidates_without_scores_are_shown_most_central_first():
    from neko.baselines.mbr import mbr_select

    candidates = [
        "a dog barked",  # the odd one out, first in the (system-name) order
        "the cat sat on a mat",
        "the cat sat on the mat",
        "the cat sat on the mat",  # two systems agree: a vote
        "the cat is on the mat",
        "cat sat mat",
        "the cat was sitting on the mat",
    ]
    record = Record(id="s", task="mt", dataset="wmt", hypotheses=candidates, source="src")
    mt = get_task("mt")
    shown = mt.shown_indices(record)
    assert len(shown) == 4 and shown[0] == mbr_select(candidates) == 2  # first shown = the chrF MBR pick
    assert 0 not in shown and 3 not in shown  # the outlier and the duplicate are not shown
    # Scores are a ranking of their own: kept. So is a record marked as already in shown order.
    assert mt.shown_indices(replace(record, scores=[0.0] * 7)) == [0, 1, 2, 4]
    assert mt.shown_indices(replace(record, meta={SHOWN_IN_ORDER: True})) == [0, 1, 2, 4]
    assert mt.build_prompt(record).splitlines()[2] == f"1. {candidates[2]}"
