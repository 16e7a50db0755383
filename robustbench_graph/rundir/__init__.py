"""The run folder: the only contract between ``rbg train``, ``rbg attack`` and ``rbg report``
(docs/run-folder.md).

One module per part of the contract, lowest first:

* :mod:`.atomic`: atomic writes (temp file + ``os.replace``) and stale temp files;
* :mod:`.folder`: the file names, bounded reads of run files, ``config.json``,
  ``status.json``, the weights and finding run folders;
* :mod:`.results`: the tidy ``results.csv`` schema, validation and cell replacement;
* :mod:`.attack_record`: ``attack.json``, the settings behind every fingerprint;
* :mod:`.per_image`: the per-image side files (``per_image/``);
* :mod:`.provenance`: the versions and commit a run's ``config.json`` records;
* :mod:`.trust`: which run folders' code this user trusts (keyed hashes kept outside the
  folders, ``rbg trust``, ``--trust-code``);
* :mod:`.user_code`: running a model's code: finding a module without running it, the
  factory defined in the recorded source, a time limit, whatever the code raises;
* :mod:`.run_code`: a folder's code and weights against their recorded SHA-256, and whether
  they are trusted, checked before anything runs;
* :mod:`.imported_model`: an imported run's network (its source, weights, rebuilding it);
* :mod:`.runs`: :func:`~.runs.load_run`, a finished run's model (:class:`~.runs.LoadedRun`),
  built from the folder's record with :mod:`robustbench_graph.models` alone (no loss code);
* :mod:`.replace`: proof that a folder is an rbg run folder before it is replaced;
* :mod:`.imported`: writing run folders of outside models (``rbg import``).

What a run to train is (``RunSpec``, its record and name) is the training layer's,
:mod:`robustbench_graph.train.spec`.

The package's ``__init__`` imports nothing, so that reading a record does not import torch.
"""
