"""Record helpers: the domain a dataset name stands for."""

from __future__ import annotations

from neko.records import domain_of


def test_domain_leaves_out_the_split():
    assert domain_of("atis_train") == domain_of("atis") == "atis"  # HyPoradise train_atis / test_atis
    assert domain_of("jfleg_dev") == "jfleg" and domain_of("wmt22_uk-en") == "wmt22_uk_en"
    assert domain_of("asr_whisper_base_telephone") == "asr_whisper_base_telephone"
    assert domain_of("test") == "test"  # a name that is only a split word stays itself
