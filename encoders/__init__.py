"""Built-in encoders. Importing a module here registers its encoders in multivic's registry."""

from encoders import audio, resnet, timm_models  # noqa: F401
