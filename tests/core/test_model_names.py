"""model_identity: the same model under a hub id, a local path or a hub cache folder."""

from __future__ import annotations

from core.model_names import model_identity


def test_model_identity_compares_hub_ids_paths_and_cache_folders():
    assert model_identity("openai/gpt-oss-20b") == "gpt-oss-20b"
    assert model_identity("/data/models/GPT-OSS-20B/") == "gpt-oss-20b"
    assert (
        model_identity("/root/.cache/huggingface/hub/models--openai--gpt-oss-20b/snapshots/abc")
        == "gpt-oss-20b"
    )
    assert model_identity("") == ""
    assert model_identity("a/other-model") != model_identity("openai/gpt-oss-20b")
