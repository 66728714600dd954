"""Worked applications beyond images, each end to end on data it ships or generates (nothing is downloaded).

* :mod:`sdeflow.applications.audio`: short musical notes (a synthesizer of harmonic tones, or a
  folder of WAV files) as log-mel spectrograms, a pitch-conditional 1-D U-Net with classifier-free
  guidance, Griffin-Lim inversion, pitch accuracy and a Frechet distance in a shipped pitch
  classifier's features (``sdeflow audio train|sample``).
* ``sdeflow.applications.molecules``: 3-D conformers of small flexible molecules with an
  E(3)-equivariant denoiser (``sdeflow molecules train|sample``).
* :mod:`sdeflow.applications.finance_paths`: daily log-return paths of a Heston model (or a user's
  file), a flow-matching MLP over the path, checked with the stylized facts of the field (heavy tails,
  volatility clustering, leverage) and by pricing calls against Heston's semi-closed form
  (``sdeflow finance train|sample``).

Import the submodule you need (``import sdeflow.applications.audio``); this package imports nothing
heavy itself.
"""
