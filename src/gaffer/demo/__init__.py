"""``gaffer demo``: the main job end to end on a local repository, with no configuration."""
