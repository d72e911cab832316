"""The tiny world: generated arithmetic tasks, a character tokenizer and small warmed-up models.

It lets the whole study run on a laptop CPU in minutes with no network (config/config.yaml).
"""
