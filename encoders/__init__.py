"""Built-in encoders. Importing a module here registers its encoders in multivic's registry."""

from encoders import audio, resnet, text, timm_models  # noqa: F401
