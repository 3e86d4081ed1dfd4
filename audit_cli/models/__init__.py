"""Models as files and architectures: the architecture registry and builders
(``architectures``, ``networks``), the network ``Recipe`` (``recipe``), checkpoint metadata
and io (``metadata``, ``safetensors_file``, ``checkpoint``), scikit-learn estimators
(``sklearn_params``, ``sklearn_model``, ``sklearn_trees``) and user code named
``MODULE:FUNCTION`` (``plugins``). Nothing here trains: training/ builds on this package.
Import the submodules directly; the package re-exports nothing, so that reading a
safetensors header does not import torch.
"""
