"""The built-in encoders, in multivic's own namespace.

Their source is the repository's top-level ``encoders/`` folder (one module per family, each
registering itself). A wheel installs those modules here, as ``multivic.encoders.*``; in a
source checkout this package's search path points at the folder. Either way they are imported
as ``multivic.encoders.<module>``, never as a bare top-level ``encoders``, so a user's folder
named ``encoders/`` can never hide them. The encoder registry imports every module here at its
first lookup.
"""

from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[2] / "encoders"
if _SOURCE.is_dir() and str(_SOURCE) not in __path__:
    __path__.append(str(_SOURCE))
