"""Every fixed choice of the sample build: sources, sets, model shape, seeds and paths.

One place, so that a rebuild with the same settings gives the same bundles, and
so that a changed setting shows in one diff.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root; every path below is relative to it (``cli.main`` changes into it
#: so that the paths stored in bundle metadata stay relative).
REPO = Path(__file__).resolve().parents[2]

#: Wheels that ship real text. Pinned, with the sha256 they had when this was written.
WHEELS = {
    "gensim==4.4.0": "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
    "spacy==3.8.18": "c076d6caab1aae5b3c0fd5ecba9f1265ad1e1824ced3e0352193ca30994ac115",
    "chatterbot-corpus==1.3.3": "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
}

#: The platform wheels are fetched for (the text inside is the same on every platform;
#: pinning it makes the download, and so the hashes above, the same on any machine).
WHEEL_PLATFORM = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]

WORK = Path("artifacts/sample_build")  # wheels and corpora (relative to the repo root)

MODEL_DIR = Path("artifacts/ecl-sample-gpt-oss")  # tokenizer + trained checkpoint

OUT_DIR = Path("sample_stats")

HOLDOUT_EVERY = 4  # one in four documents / conversations / files is held out

#: Sets that hold out one in two instead: they are evaluated on held-out text after their
#: bundle's 256 samples, so they need at least 256 + 128 distinct held-out conversations
#: (English: 899 distinct, Persian: 773; the second language of the predictor study).
HOLDOUT_EVERY_BY_SET = {"dialogue_en": 2, "dialogue_fa": 2}

SEED = 1234

#: chatterbot-corpus folder -> short language code used in file names.
CHATTERBOT_LANGS = {
    "english": "en",
    "italian": "it",
    "spanish": "es",
    "portuguese": "pt",
    "dutch": "nl",
    "german": "de",
    "french": "fr",
    "swedish": "sv",
    "indonesian": "id",
    "turkish": "tr",
    "russian": "ru",
    "ukrainian": "uk",
    "persian": "fa",
    "hebrew": "he",
    "hindi": "hi",
    "hinglish": "hi-latn",
    "bengali": "bn",
    "marathi": "mr",
    "oriya": "or",
    "tamil": "ta",
    "telugu": "te",
    "urdu": "ur",
    "thai": "th",
    "chinese": "zh",
    "traditionalchinese": "zh-hant",
    "japanese": "ja",
    "korean": "ko",
    "yoruba": "yo",
}

#: Languages that get their own calibration bundle (the largest dialogue corpora).
DIALOGUE_SETS = ("en", "it", "uk", "fa", "ja", "ko", "zh")

#: Calibration sets written to sample_stats/, in display order, with a description.
CALIBRATION_SETS: dict[str, str] = {
    "news_en": "English news (gensim test data: Lee corpus, Australian news)",
    "wiki_en": "English Wikipedia articles (gensim test data: enwiki excerpt, markup stripped)",
    **{
        f"dialogue_{code}": f"{name.title()} chatbot dialogue (chatterbot-corpus)"
        for name, code in CHATTERBOT_LANGS.items()
        if code in DIALOGUE_SETS
    },
    "sentences_68lang": "spaCy example sentences, 68 languages (spacy/lang/*/examples.py)",
    "code_python": "Python source (this interpreter's standard library, top-level modules)",
    "mixed": "round-robin mix of every set above",
}

MODEL_CONFIG = dict(
    hidden_size=128,
    num_hidden_layers=4,
    num_local_experts=32,
    num_experts_per_tok=4,
    intermediate_size=64,
    head_dim=32,
    num_attention_heads=4,
    num_key_value_heads=2,
    sliding_window=64,
    max_position_embeddings=512,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    router_aux_loss_coef=0.02,
    tie_word_embeddings=False,
)

VOCAB_SIZE = 6000

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>"]

UNTRAINED_DIR = MODEL_DIR.with_name(MODEL_DIR.name + "-untrained")

BASELINE_SETS = ("wiki_en", "dialogue_it", "code_python")

EVAL_DIR = WORK / "corpora" / "evaluation"  # held-out text of the evaluation (not shipped)

MASK_DIR = WORK / "masks"  # the evaluated masks (each evaluation result stores its kept experts)

#: Language and domain of each set, for the predictor study's "same_data" group: the masks
#: a practitioner chooses between for an evaluated set are those calibrated on text of its
#: own language and domain (``lens predict-vs-actual --group LABEL=GROUP``).
DATA_GROUPS = {"news_en": "english prose", "wiki_en": "english prose"}

#: Criteria besides ``mass`` whose masks of an evaluation set's own bundle are evaluated too.
EVAL_CRITERIA = ("frequency", "gate", "energy", "ean", "reap")
