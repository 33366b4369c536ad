"""The foundation floor: what every part of ylg needs, importing nothing else of ylg.

- :mod:`~ylg.runtime.files`: atomic writes (:func:`~ylg.runtime.files.atomic_path`, text,
  ``torch.save``) and streamed file digests;
- :mod:`~ylg.runtime.cache`: the one cache folder (``$YLG_CACHE``, else
  ``$XDG_CACHE_HOME/ylg``, else ``~/.cache/ylg``);
- :mod:`~ylg.runtime.device`: ``device="auto"`` and device strings;
- :mod:`~ylg.runtime.threads`: how many CPU threads a command gives torch;
- :mod:`~ylg.runtime.checkpoint`: the checkpoint file format, finding and reading one.

Rebuilding models from a checkpoint is one floor up, in :mod:`ylg.models.loading` (it needs the
models); shipped models are :mod:`ylg.models.pretrained`.
"""
