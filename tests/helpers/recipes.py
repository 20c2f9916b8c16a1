"""Recipes the tests share."""

TINY_RECIPE = """
seed: 0
model:
  shared: true
  branch_a: {name: tiny, encoder: resnet18, expander: 64-64, view: {crop_scale: [0.5, 1.0]}}
  branch_b: {name: tiny, encoder: resnet18, expander: 64-64, view: {crop_scale: [0.5, 1.0], solarize_p: 0.2}}
data: {format: image_folder, root: null, image_size: 16, num_workers: 0}
optim: {name: adamw, base_lr: 0.004, weight_decay: 0.0001, warmup_epochs: 0}
train: {epochs: 1, batch_size: 16, log_every: 1}
eval: {linear_epochs: 5, batch_size: 64}
"""
